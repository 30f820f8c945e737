//! `nextval`, `currval`, `setval` and `lastval`. The catalog's expression
//! context holds instances without a session (column defaults are planned
//! there); each session registers its own, which remember what it took
//! for `currval`/`lastval`, and a session's plans have the catalog's
//! instances replaced by its own ([`SessionSequences::adopt`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use parking_lot::Mutex;

use crate::catalog::Catalog;
use crate::catalog::descriptor::SequenceDescriptor;
use crate::catalog::relation_missing;
use crate::error::{SqlError, SqlResult, sqlstate};

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Nextval,
    Currval,
    Setval,
    Lastval,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nextval => "nextval",
            Kind::Currval => "currval",
            Kind::Setval => "setval",
            Kind::Lastval => "lastval",
        }
    }
}

/// What a session took: per sequence its last value, and the last value
/// of any sequence.
#[derive(Debug, Default)]
pub struct SessionSequences {
    current: Mutex<HashMap<u32, i64>>,
    last: Mutex<Option<(u32, i64)>>,
}

impl SessionSequences {
    fn took(&self, seq: u32, v: i64) {
        self.current.lock().insert(seq, v);
        *self.last.lock() = Some((seq, v));
    }

    /// `plan` with every sequence function of the catalog's context (a
    /// column default) replaced by this session's `functions`.
    pub fn adopt(functions: &[Arc<ScalarUDF>], plan: LogicalPlan) -> SqlResult<LogicalPlan> {
        let replace = |e: Expr| match e {
            Expr::ScalarFunction(f) => match functions.iter().find(|u| u.name() == f.func.name()) {
                Some(own) if !Arc::ptr_eq(own, &f.func) => Ok(Transformed::yes(
                    Expr::ScalarFunction(ScalarFunction::new_udf(own.clone(), f.args)),
                )),
                _ => Ok(Transformed::no(Expr::ScalarFunction(f))),
            },
            other => Ok(Transformed::no(other)),
        };
        let plan = plan
            .transform_up_with_subqueries(|node| node.map_expressions(|e| e.transform_up(replace)))?
            .data;
        Ok(plan)
    }
}

/// One sequence function, of a session or (without one) of the catalog.
struct SequenceFn {
    kind: Kind,
    signature: Signature,
    catalog: Weak<Catalog>,
    session: Option<Arc<SessionSequences>>,
}

impl std::fmt::Debug for SequenceFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceFn")
            .field("kind", &self.kind)
            .finish()
    }
}

impl PartialEq for SequenceFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && match (&self.session, &other.session) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for SequenceFn {}

impl std::hash::Hash for SequenceFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

/// The sequence a `regclass`-like text names: `name`, `schema.name` or a
/// quoted `"Name"` (unquoted names fold to lower case).
fn resolve(catalog: &Catalog, text: &str) -> SqlResult<Arc<SequenceDescriptor>> {
    let last = text.rsplit('.').next().unwrap_or(text).trim();
    let name = match last.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_lowercase(),
    };
    catalog
        .sequence(&name)
        .ok_or_else(|| relation_missing(text))
}

/// Runs `f` to its end from synchronous code (a function evaluated by
/// DataFusion): only when a block must be taken from the store.
fn wait<T>(f: impl std::future::Future<Output = SqlResult<T>>) -> SqlResult<T> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| SqlError::internal("sequence functions run inside the server's runtime"))?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(SqlError::internal(
            "sequence functions need the multi-threaded runtime",
        ));
    }
    tokio::task::block_in_place(|| handle.block_on(f))
}

impl SequenceFn {
    fn not_yet(&self, what: String) -> SqlError {
        SqlError::new(sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE, what)
    }

    /// One row's value.
    fn value(
        &self,
        catalog: &Catalog,
        name: Option<&str>,
        v: Option<i64>,
        called: bool,
    ) -> SqlResult<i64> {
        let session = self.session.as_deref();
        let seq = || resolve(catalog, name.unwrap_or_default());
        match self.kind {
            Kind::Lastval => session
                .and_then(|s| *s.last.lock())
                .map(|(_, v)| v)
                .ok_or_else(|| self.not_yet("lastval is not yet defined in this session".into())),
            Kind::Nextval => {
                let seq = seq()?;
                let values = catalog.sequence_values();
                let v = match values.next_cached(&seq) {
                    Some(v) => v,
                    None => wait(values.next(&seq))?,
                };
                if let Some(s) = session {
                    s.took(seq.id, v);
                }
                Ok(v)
            }
            Kind::Currval => {
                let seq = seq()?;
                session
                    .and_then(|s| s.current.lock().get(&seq.id).copied())
                    .ok_or_else(|| {
                        self.not_yet(format!(
                            "currval of sequence \"{}\" is not yet defined in this session",
                            seq.name
                        ))
                    })
            }
            Kind::Setval => {
                let seq = seq()?;
                let v = v.unwrap_or_default();
                wait(catalog.sequence_values().set(&seq, v, called))?;
                if called && let Some(s) = session {
                    s.current.lock().insert(seq.id, v);
                }
                Ok(v)
            }
        }
    }
}

impl ScalarUDFImpl for SequenceFn {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let catalog = self
            .catalog
            .upgrade()
            .ok_or_else(|| SqlError::internal("the catalog is gone").into_datafusion())?;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let names = arrays
            .first()
            .map(|a| cast(a, &DataType::Utf8))
            .transpose()?;
        let values = arrays
            .get(1)
            .map(|a| cast(a, &DataType::Int64))
            .transpose()?;
        let called = arrays
            .get(2)
            .map(|a| cast(a, &DataType::Boolean))
            .transpose()?;
        let mut out = Int64Builder::with_capacity(rows);
        for r in 0..rows {
            let name = names
                .as_ref()
                .map(|a| a.as_string::<i32>())
                .filter(|a| !a.is_null(r))
                .map(|a| a.value(r));
            let value = values
                .as_ref()
                .map(|a| a.as_primitive::<datafusion::arrow::datatypes::Int64Type>())
                .filter(|a| !a.is_null(r))
                .map(|a| a.value(r));
            let called = called
                .as_ref()
                .map(|a| a.as_boolean())
                .is_none_or(|a| a.is_null(r) || a.value(r));
            // NULL arguments give NULL, as PostgreSQL's strict functions.
            if (self.kind != Kind::Lastval && name.is_none())
                || (self.kind == Kind::Setval && value.is_none())
            {
                out.append_null();
                continue;
            }
            let v = self
                .value(&catalog, name, value, called)
                .map_err(SqlError::into_datafusion)?;
            out.append_value(v);
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(out.finish())))
    }
}

/// The four functions over `catalog`, for `session` (or for the catalog's
/// own expression context, without one).
pub fn functions(
    catalog: &Arc<Catalog>,
    session: Option<Arc<SessionSequences>>,
) -> Vec<Arc<ScalarUDF>> {
    let arities: [(Kind, &[usize]); 4] = [
        (Kind::Nextval, &[1]),
        (Kind::Currval, &[1]),
        (Kind::Setval, &[2, 3]),
        (Kind::Lastval, &[0]),
    ];
    arities
        .into_iter()
        .map(|(kind, arities)| {
            let signature = Signature::one_of(
                arities
                    .iter()
                    .map(|&n| {
                        if n == 0 {
                            TypeSignature::Nullary
                        } else {
                            TypeSignature::Any(n)
                        }
                    })
                    .collect(),
                Volatility::Volatile,
            );
            Arc::new(ScalarUDF::new_from_impl(SequenceFn {
                kind,
                signature,
                catalog: Arc::downgrade(catalog),
                session: session.clone(),
            }))
        })
        .collect()
}
