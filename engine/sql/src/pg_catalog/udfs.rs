//! Catalog functions that describe HoloFusion's objects:
//! `pg_get_indexdef`, `pg_get_constraintdef` (replacing
//! datafusion-pg-catalog's, which return empty text), `pg_get_triggerdef`
//! (there are no triggers), `holo_relname` (what a `::regclass` cast of an
//! oid prints) and PostgreSQL's `version()`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::objects::{Object, constraint_def, constraints, index, index_def, object};
use crate::catalog::Catalog;

/// What a function computes from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    IndexDef,
    ConstraintDef,
    TriggerDef,
    RelName,
}

/// One catalog function over `catalog`.
struct Describe {
    name: &'static str,
    kind: Kind,
    signature: Signature,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Describe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Describe")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for Describe {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Describe {}

impl std::hash::Hash for Describe {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Argument `i` of every row as `i64` (NULL where absent or not a number).
fn ints(args: &[ArrayRef], i: usize) -> Result<Option<ArrayRef>> {
    args.get(i)
        .map(|a| cast(a, &DataType::Int64))
        .transpose()
        .map_err(Into::into)
}

impl Describe {
    fn text(&self, oid: i64, column: i64, pretty: bool) -> Option<String> {
        let catalog = &self.catalog;
        match (self.kind, object(oid)) {
            (Kind::IndexDef, Some(Object::Index(t, i))) => {
                let entry = catalog.table_by_id(t)?;
                index_def(&entry.desc, &index(&entry.desc, i)?, column, pretty)
            }
            (Kind::ConstraintDef, Some(Object::Constraint(t, k))) => {
                let entry = catalog.table_by_id(t)?;
                let c = constraints(&entry.desc).into_iter().find(|c| c.k == k)?;
                constraint_def(&entry, &c, pretty, |id| catalog.table_by_id(id))
            }
            (Kind::RelName, Some(Object::Table(t))) => {
                Some(super::quote_ident(&catalog.table_by_id(t)?.desc.name))
            }
            (Kind::RelName, Some(Object::Index(t, i))) => {
                let entry = catalog.table_by_id(t)?;
                Some(super::quote_ident(&index(&entry.desc, i)?.name))
            }
            // Not ours (a system relation): its number, as PostgreSQL
            // prints an oid it does not know.
            (Kind::RelName, _) => Some(oid.to_string()),
            _ => None,
        }
    }
}

impl ScalarUDFImpl for Describe {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let oids = ints(&arrays, 0)?;
        // pg_get_indexdef(oid, column, pretty); the others (oid, pretty).
        let (column, pretty_at) = match self.kind {
            Kind::IndexDef => (ints(&arrays, 1)?, 2),
            _ => (None, 1),
        };
        let pretty = arrays
            .get(pretty_at)
            .map(|a| cast(a, &DataType::Boolean))
            .transpose()?;
        let mut out = StringBuilder::new();
        for r in 0..rows {
            let oid = oids
                .as_ref()
                .map(|a| a.as_primitive::<Int64Type>())
                .filter(|a| !a.is_null(r))
                .map(|a| a.value(r));
            let Some(oid) = oid else {
                out.append_null();
                continue;
            };
            let column = column
                .as_ref()
                .map(|a| a.as_primitive::<Int64Type>())
                .filter(|a| !a.is_null(r))
                .map_or(0, |a| a.value(r));
            let pretty = pretty
                .as_ref()
                .map(|a| a.as_boolean())
                .is_some_and(|a| !a.is_null(r) && a.value(r));
            match self.text(oid, column, pretty) {
                Some(t) => out.append_value(t),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn udf(name: &'static str, kind: Kind, arities: &[usize], catalog: &Arc<Catalog>) -> ScalarUDF {
    let signature = Signature::one_of(
        arities.iter().map(|&n| TypeSignature::Any(n)).collect(),
        Volatility::Stable,
    );
    ScalarUDF::new_from_impl(Describe {
        name,
        kind,
        signature,
        catalog: catalog.clone(),
    })
}

/// PostgreSQL's `version()`, which drivers parse (SQLAlchemy reads the
/// server's version from it).
fn version() -> ScalarUDF {
    let text = format!(
        "PostgreSQL 16.6 (HoloFusion {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    );
    datafusion::logical_expr::create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    )
}

/// A function of `arities` arguments (any types) that returns NULL of
/// `ty`: descriptions and comments, which HoloFusion does not store.
fn nothing(name: &'static str, arities: &[usize], ty: DataType) -> ScalarUDF {
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Nothing {
        name: &'static str,
        ty: DataType,
        signature: Signature,
    }
    impl ScalarUDFImpl for Nothing {
        fn name(&self) -> &str {
            self.name
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
            Ok(self.ty.clone())
        }
        fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from(&self.ty)?))
        }
    }
    let signature = Signature::one_of(
        arities.iter().map(|&n| TypeSignature::Any(n)).collect(),
        Volatility::Stable,
    );
    ScalarUDF::new_from_impl(Nothing {
        name,
        ty,
        signature,
    })
}

/// `array` as a function's result: its one value when every argument was
/// a scalar.
fn columnar(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?));
    }
    Ok(ColumnarValue::Array(array))
}

/// PostgreSQL's `pg_size_pretty(bigint)`: bytes, kB, MB, GB or TB,
/// rounded, switching unit at 10 240 of the smaller one.
fn size_pretty(bytes: i64) -> String {
    let mut size = bytes as f64;
    for unit in ["bytes", "kB", "MB", "GB"] {
        if size.abs() < 10_240.0 {
            return format!("{} {unit}", size.round() as i64);
        }
        size /= 1024.0;
    }
    format!("{} TB", size.round() as i64)
}

fn pg_size_pretty() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sizes = arrays[0].as_primitive::<Int64Type>();
            let mut out = StringBuilder::new();
            for i in 0..sizes.len() {
                if sizes.is_null(i) {
                    out.append_null();
                } else {
                    out.append_value(size_pretty(sizes.value(i)));
                }
            }
            columnar(Arc::new(out.finish()), scalar)
        }),
    )
}

/// `pg_table_size(oid)`: HoloFusion estimates it from the table's
/// statistics (rows times their average encoded width); 0 without them.
fn pg_table_size(catalog: &Arc<Catalog>) -> ScalarUDF {
    let catalog = catalog.clone();
    datafusion::logical_expr::create_udf(
        "pg_table_size",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = arrays[0].as_primitive::<Int64Type>();
            let sizes: datafusion::arrow::array::Int64Array = (0..oids.len())
                .map(|i| {
                    if oids.is_null(i) {
                        return None;
                    }
                    let Some(Object::Table(t)) = object(oids.value(i)) else {
                        return Some(0);
                    };
                    let stats = catalog.table_by_id(t).and_then(|e| e.stats.clone());
                    Some(stats.map_or(0, |s| {
                        let width: f64 = s.columns.iter().map(|c| c.avg_width).sum();
                        (s.row_count as f64 * (width + 16.0)) as i64
                    }))
                })
                .collect();
            columnar(Arc::new(sizes), scalar)
        }),
    )
}

/// `pg_get_serial_sequence(table, column)`: `public.<sequence>` of the
/// sequence the column owns (a `SERIAL`), NULL when it owns none.
fn pg_get_serial_sequence(catalog: &Arc<Catalog>) -> ScalarUDF {
    let catalog = catalog.clone();
    datafusion::logical_expr::create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (tables, columns) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
            let mut out = StringBuilder::new();
            for i in 0..tables.len() {
                let found = (!tables.is_null(i) && !columns.is_null(i))
                    .then(|| {
                        let table = tables.value(i);
                        let table = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
                        let entry = catalog.table(table)?;
                        let column = entry.desc.column(columns.value(i))?.id;
                        catalog.sequences().into_iter().find(|s| {
                            s.owned_by.as_ref().is_some_and(|o| {
                                o.table_id == entry.desc.id && o.column_id == column
                            })
                        })
                    })
                    .flatten();
                match found {
                    Some(seq) => {
                        out.append_value(format!("public.{}", super::quote_ident(&seq.name)))
                    }
                    None => out.append_null(),
                }
            }
            columnar(Arc::new(out.finish()), scalar)
        }),
    )
}

/// Registers the functions on `ctx` (over `catalog`).
pub(super) fn register(ctx: &SessionContext, catalog: Arc<Catalog>) {
    ctx.register_udf(udf("pg_get_indexdef", Kind::IndexDef, &[1, 3], &catalog));
    ctx.register_udf(udf(
        "pg_get_constraintdef",
        Kind::ConstraintDef,
        &[1, 2],
        &catalog,
    ));
    ctx.register_udf(udf(
        "pg_get_triggerdef",
        Kind::TriggerDef,
        &[1, 2],
        &catalog,
    ));
    ctx.register_udf(udf("holo_relname", Kind::RelName, &[1], &catalog));
    ctx.register_udf(version());
    ctx.register_udf(nothing("col_description", &[2], DataType::Utf8));
    ctx.register_udf(nothing("obj_description", &[1, 2], DataType::Utf8));
    ctx.register_udf(nothing("shobj_description", &[2], DataType::Utf8));
    ctx.register_udf(pg_size_pretty());
    ctx.register_udf(pg_table_size(&catalog));
    ctx.register_udf(pg_get_serial_sequence(&catalog));
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        assert_eq!(super::size_pretty(0), "0 bytes");
        assert_eq!(super::size_pretty(10_239), "10239 bytes");
        assert_eq!(super::size_pretty(10_240), "10 kB");
        assert_eq!(super::size_pretty(5 << 30), "5120 MB");
    }
}
