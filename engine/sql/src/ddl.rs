//! CREATE TABLE and DROP TABLE; the indexes a table definition makes are in
//! [`indexes`], CREATE INDEX and DROP INDEX in [`create_index`], ALTER TABLE
//! in [`alter_table`].

mod alter_checks;
mod alter_table;
mod create_index;
mod foreign_keys;
mod indexes;
mod sequences;

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::ExprSchemable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, CreateTable, Expr as SqlExpr, ObjectName, TableConstraint,
};

use crate::catalog::Catalog;
use crate::catalog::descriptor::{
    CheckDescriptor, ColumnDescriptor, DESCRIPTOR_FORMAT, PrimaryKeyDescriptor, SequenceDescriptor,
    TableDescriptor,
};
use crate::catalog::keys::{DATABASE_NAME, PUBLIC_SCHEMA_ID, PUBLIC_SCHEMA_NAME};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::types::SqlType;
pub(crate) use alter_checks::check_columns;
pub use alter_table::alter_table;
pub use create_index::{create_index, drop_indexes};
use indexes::{UniqueSpec, add_unique_indexes};
pub use sequences::{create_sequence, drop_sequences};

/// Resolves a possibly qualified table name (`t`, `public.t`,
/// `holo.public.t`) to the table name in `public`.
pub fn resolve_table_name(name: &ObjectName) -> SqlResult<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(ident) if ident.quote_style.is_some() => ident.value.clone(),
            Some(ident) => ident.value.to_lowercase(),
            None => p.to_string(),
        })
        .collect();
    let (db, schema, table) = match parts.as_slice() {
        [t] => (None, None, t.clone()),
        [s, t] => (None, Some(s.clone()), t.clone()),
        [d, s, t] => (Some(d.clone()), Some(s.clone()), t.clone()),
        _ => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("improper qualified name (too many dotted names): {name}"),
            ));
        }
    };
    if let Some(db) = db
        && db != DATABASE_NAME
    {
        return Err(SqlError::unsupported(format!(
            "cross-database references are not implemented: {name}"
        )));
    }
    if let Some(schema) = schema
        && schema != PUBLIC_SCHEMA_NAME
    {
        return Err(SqlError::new(
            sqlstate::INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
        ));
    }
    Ok(table)
}

fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The column names of a PRIMARY KEY or UNIQUE constraint (`what`);
/// expressions are not supported.
fn key_column_names(columns: &[ast::IndexColumn], what: &str) -> SqlResult<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(id) => Ok(ident_name(id)),
            other => Err(SqlError::unsupported(format!(
                "{what} on expression {other} is not supported"
            ))),
        })
        .collect()
}

fn unsupported_clause(what: &str) -> SqlError {
    SqlError::unsupported(format!("CREATE TABLE ... {what} is not supported"))
}

/// Whether a DEFAULT expression is a constant HoloFusion accepts.
fn is_constant_default(expr: &SqlExpr) -> bool {
    match expr {
        SqlExpr::Value(_) | SqlExpr::TypedString(_) => true,
        SqlExpr::UnaryOp { expr, .. } | SqlExpr::Nested(expr) => is_constant_default(expr),
        SqlExpr::Cast { expr, .. } => is_constant_default(expr),
        SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("nextval") => {
            // nextval('seq') or nextval('seq'::regclass), as pg_dump writes it.
            let arg = f.args.to_string();
            arg.starts_with("('") && (arg.ends_with("')") || arg.ends_with("'::regclass)"))
        }
        SqlExpr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            matches!(
                name.as_str(),
                "current_timestamp"
                    | "now"
                    | "current_date"
                    | "localtimestamp"
                    | "transaction_timestamp"
            ) && matches!(&f.args, ast::FunctionArguments::None)
                || matches!(name.as_str(), "now") && f.args.to_string() == "()"
        }
        SqlExpr::Identifier(id) => {
            matches!(
                id.value.to_lowercase().as_str(),
                "current_timestamp" | "current_date" | "localtimestamp"
            )
        }
        _ => false,
    }
}

/// Plans a default and evaluates it once to check it fits the column.
fn validate_default(ctx: &SessionContext, column: &str, ty: SqlType, sql: &str) -> SqlResult<()> {
    let empty = DFSchema::empty();
    let expr = ctx.parse_sql_expr(sql, &empty).map_err(|e| {
        SqlError::new(
            sqlstate::INVALID_COLUMN_DEFINITION,
            format!(
                "invalid default for column \"{column}\": {}",
                SqlError::from(e).message
            ),
        )
    })?;
    let source = expr.get_type(&empty)?;
    if !ty.accepts_assignment_from(&source) {
        return Err(SqlError::new(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "column \"{column}\" is of type {ty} but default expression is of type {source}"
            ),
        ));
    }
    // Functions such as now() are evaluated per statement; constants are
    // evaluated once here so that a default that cannot be stored fails now.
    let has_function = expr.exists(|e| {
        Ok(matches!(
            e,
            datafusion::logical_expr::Expr::ScalarFunction(_)
        ))
    })?;
    if has_function {
        return Ok(());
    }
    let physical = ctx.create_physical_expr(expr.cast_to(&ty.arrow_type(), &empty)?, &empty)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    physical.evaluate(&batch)?;
    Ok(())
}

/// Validates a CHECK expression against the table's columns.
fn validate_check(ctx: &SessionContext, table: &TableDescriptor, sql: &str) -> SqlResult<()> {
    let schema = Schema::new(
        table
            .columns
            .iter()
            .map(|c| {
                datafusion::arrow::datatypes::Field::new(&c.name, c.ty.arrow_type(), c.nullable)
            })
            .collect::<Vec<_>>(),
    );
    let df_schema = DFSchema::try_from(schema)?;
    let expr = ctx.parse_sql_expr(sql, &df_schema)?;
    let ty = expr.get_type(&df_schema)?;
    if ty != DataType::Boolean {
        return Err(SqlError::new(
            sqlstate::DATATYPE_MISMATCH,
            format!("argument of CHECK must be type boolean, not type {ty}"),
        ));
    }
    ctx.create_physical_expr(expr, &df_schema)?;
    Ok(())
}

/// The name of a new CHECK constraint of table `table`: `given`, or
/// PostgreSQL's `<table>_<column>_check[N]`; `used` holds the table's
/// constraint names and gets the new one.
fn choose_check_name(
    table: &str,
    given: Option<String>,
    column: Option<&str>,
    used: &mut HashSet<String>,
) -> SqlResult<String> {
    let base = match (&given, column) {
        (Some(n), _) => n.clone(),
        (None, Some(c)) => format!("{table}_{c}_check"),
        (None, None) => format!("{table}_check"),
    };
    let mut name = base.clone();
    let mut n = 1;
    while !used.insert(name.clone()) {
        if given.is_some() {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_OBJECT,
                format!("constraint \"{base}\" for relation \"{table}\" already exists"),
            ));
        }
        name = format!("{base}{n}");
        n += 1;
    }
    Ok(name)
}

/// Column `col` of a definition (CREATE TABLE, ADD COLUMN) with id `id`:
/// its type, NULL, NOT NULL and DEFAULT; the options that make constraints
/// (PRIMARY KEY, UNIQUE, CHECK, REFERENCES, ...) are left to the caller.
pub(crate) fn column_descriptor<'a>(
    ctx: &SessionContext,
    col: &'a ast::ColumnDef,
    id: u32,
) -> SqlResult<(ColumnDescriptor, Vec<&'a ast::ColumnOptionDef>)> {
    let name = ident_name(&col.name);
    let ty = match sequences::serial_type(&col.data_type) {
        Some(ty) => ty,
        None => SqlType::from_ast(&col.data_type)?,
    };
    let mut column = ColumnDescriptor {
        id,
        name: name.clone(),
        ty,
        nullable: true,
        default: None,
        missing: None,
        validating_not_null: false,
    };
    let mut constraints = Vec::new();
    for opt in &col.options {
        match &opt.option {
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Null => {}
            ColumnOption::Default(expr) => {
                if !is_constant_default(expr) {
                    return Err(SqlError::unsupported(format!(
                        "DEFAULT {expr} for column \"{name}\": only constants and CURRENT_TIMESTAMP are supported"
                    )));
                }
                let sql = expr.to_string();
                validate_default(ctx, &name, ty, &sql)?;
                column.default = Some(sql);
            }
            _ => constraints.push(opt),
        }
    }
    Ok((column, constraints))
}

/// The descriptor of a CREATE TABLE `ct` (id and version are assigned by
/// the catalog), validated, and the sequences of its `SERIAL` columns;
/// `taken` tells whether a relation name is in use in the schema (for the
/// names of the indexes and sequences the table makes).
pub fn table_descriptor(
    ctx: &SessionContext,
    ct: &CreateTable,
    taken: &dyn Fn(&str) -> bool,
    tables: &dyn Fn(&str) -> Option<TableDescriptor>,
) -> SqlResult<(TableDescriptor, Vec<SequenceDescriptor>)> {
    if ct.or_replace {
        return Err(unsupported_clause("OR REPLACE"));
    }
    if ct.temporary || ct.global.is_some() {
        return Err(unsupported_clause("TEMPORARY"));
    }
    if ct.external {
        return Err(unsupported_clause("EXTERNAL"));
    }
    if ct.query.is_some() {
        return Err(unsupported_clause("AS SELECT"));
    }
    if ct.like.is_some() || ct.clone.is_some() {
        return Err(unsupported_clause("LIKE"));
    }
    let name = resolve_table_name(&ct.name)?;
    if ct.columns.is_empty() {
        return Err(SqlError::unsupported(
            "tables without columns are not supported",
        ));
    }
    let mut desc = TableDescriptor {
        format: DESCRIPTOR_FORMAT,
        id: 0,
        name: name.clone(),
        parent_id: PUBLIC_SCHEMA_ID,
        version: 0,
        columns: Vec::new(),
        hidden_columns: Vec::new(),
        primary_key: PrimaryKeyDescriptor {
            name: format!("{name}_pkey"),
            column_ids: Vec::new(),
        },
        checks: Vec::new(),
        indexes: Vec::new(),
        next_column_id: 1,
        foreign_keys: Vec::new(),
        next_index_id: 2,
    };
    let mut uniques: Vec<UniqueSpec> = Vec::new();
    let mut pk_names: Option<Vec<String>> = None;
    let mut check_sql: Vec<(Option<String>, String, Option<String>)> = Vec::new();
    let mut foreign: Vec<(&ast::ForeignKeyConstraint, Option<String>, Option<String>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut serial_columns = Vec::new();
    let set_pk = |pk: &mut Option<Vec<String>>, cols: Vec<String>| {
        if pk.is_some() {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                format!("multiple primary keys for table \"{name}\" are not allowed"),
            ));
        }
        *pk = Some(cols);
        Ok(())
    };
    for col in &ct.columns {
        let col_name = ident_name(&col.name);
        if !seen.insert(col_name.clone()) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{col_name}\" specified more than once"),
            ));
        }
        let (column, constraints) = column_descriptor(ctx, col, desc.next_column_id)?;
        if sequences::serial_type(&col.data_type).is_some() {
            serial_columns.push(column.id);
        }
        desc.next_column_id += 1;
        for opt in constraints {
            match &opt.option {
                ColumnOption::PrimaryKey(_) => set_pk(&mut pk_names, vec![col_name.clone()])?,
                ColumnOption::Check(check) => check_sql.push((
                    opt.name.as_ref().or(check.name.as_ref()).map(ident_name),
                    check.expr.to_string(),
                    Some(col_name.clone()),
                )),
                ColumnOption::Unique(c) => {
                    uniques.push(UniqueSpec::column(&col_name, opt.name.as_ref(), c)?)
                }
                ColumnOption::ForeignKey(fk) => foreign.push((
                    fk,
                    opt.name.as_ref().or(fk.name.as_ref()).map(ident_name),
                    Some(col_name.clone()),
                )),
                other => {
                    return Err(SqlError::unsupported(format!(
                        "column option {other} is not supported"
                    )));
                }
            }
        }
        desc.columns.push(column);
    }
    for constraint in &ct.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                let cols = key_column_names(&pk.columns, "PRIMARY KEY")?;
                set_pk(&mut pk_names, cols)?;
                if let Some(n) = &pk.name {
                    desc.primary_key.name = ident_name(n);
                }
            }
            TableConstraint::Check(check) => check_sql.push((
                check.name.as_ref().map(ident_name),
                check.expr.to_string(),
                None,
            )),
            TableConstraint::Unique(c) => uniques.push(UniqueSpec::table(c)?),
            TableConstraint::ForeignKey(fk) => {
                foreign.push((fk, fk.name.as_ref().map(ident_name), None))
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "table constraint {other} is not supported"
                )));
            }
        }
    }
    let pk_names = pk_names.ok_or_else(|| {
        SqlError::unsupported(format!("table \"{name}\" needs a PRIMARY KEY"))
            .with_hint("declare a PRIMARY KEY column or a PRIMARY KEY (...) constraint")
    })?;
    let mut pk_ids = Vec::with_capacity(pk_names.len());
    for pk in &pk_names {
        let col = desc
            .columns
            .iter_mut()
            .find(|c| &c.name == pk)
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{pk}\" named in key does not exist"),
                )
            })?;
        if pk_ids.contains(&col.id) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{pk}\" appears twice in primary key constraint"),
            ));
        }
        col.nullable = false;
        pk_ids.push(col.id);
    }
    desc.primary_key.column_ids = pk_ids;
    let mut used_names: HashSet<String> = HashSet::new();
    for (given, sql, column) in check_sql {
        validate_check(ctx, &desc, &sql)?;
        let check_name = choose_check_name(&name, given, column.as_deref(), &mut used_names)?;
        desc.checks.push(CheckDescriptor {
            name: check_name,
            expr: sql,
            validated: true,
        });
    }
    add_unique_indexes(&mut desc, uniques, &mut used_names, taken)?;
    used_names.insert(desc.primary_key.name.clone());
    let mut serials = Vec::new();
    for id in serial_columns {
        let ty = desc
            .column_by_id(id)
            .map(|c| c.ty)
            .unwrap_or(SqlType::BigInt);
        serials.push(sequences::make_serial(
            &mut desc,
            id,
            ty,
            taken,
            &mut used_names,
        )?);
    }
    for (fk, given, column) in foreign {
        let fk = foreign_keys::foreign_key_descriptor(
            &desc,
            fk,
            given,
            column.as_deref(),
            tables,
            &mut used_names,
        )?;
        desc.foreign_keys.push(fk);
    }
    Ok((desc, serials))
}

/// Runs a CREATE TABLE; `Ok(false)` when it existed and IF NOT EXISTS was
/// given.
/// A table with foreign keys is returned once every node knows them (so a
/// parent row deleted anywhere after that is checked against its rows);
/// `interrupt` (the statement's) ends that wait.
pub async fn create_table(
    catalog: &Catalog,
    ct: &CreateTable,
    interrupt: &crate::interrupt::Interrupt,
) -> SqlResult<bool> {
    // An existing table ends IF NOT EXISTS before the definition is
    // checked (its index names are then taken by the table itself).
    if ct.if_not_exists && catalog.table(&resolve_table_name(&ct.name)?).is_some() {
        return Ok(false);
    }
    catalog.refresh_if_stale().await?;
    let (desc, serials) = table_descriptor(
        catalog.expr_context(),
        ct,
        &|name| catalog.relation_exists(name),
        &|name| catalog.table(name).map(|t| t.desc.clone()),
    )?;
    let linked = !desc.foreign_keys.is_empty();
    let created = catalog
        .create_table(desc, serials, ct.if_not_exists)
        .await?;
    if created && linked {
        catalog
            .wait_for_version(catalog.stored_version(), interrupt)
            .await?;
    }
    Ok(created)
}

/// Runs a DROP TABLE of `names`.
pub async fn drop_tables(
    catalog: &Catalog,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<()> {
    let resolved = names
        .iter()
        .map(resolve_table_name)
        .collect::<SqlResult<Vec<_>>>()?;
    if !if_exists && let Some(missing) = resolved.iter().find(|n| catalog.table(n).is_none()) {
        return Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("table \"{missing}\" does not exist"),
        ));
    }
    // A table that other listed tables reference goes after them; tables
    // that only reference each other go together (as in PostgreSQL).
    let mut pending = resolved;
    while !pending.is_empty() {
        let referencing = |name: &String| -> Vec<String> {
            catalog.table(name).map_or_else(Vec::new, |t| {
                t.links
                    .inbound
                    .iter()
                    .filter(|l| l.child_id != t.desc.id)
                    .map(|l| l.child_name.clone())
                    .collect()
            })
        };
        let free = pending
            .iter()
            .position(|n| !referencing(n).iter().any(|c| pending.contains(c)));
        let (i, cascade) = match free {
            Some(i) => (i, cascade),
            None => match pending
                .iter()
                .position(|n| referencing(n).iter().all(|c| pending.contains(c)))
            {
                Some(i) => (i, true),
                None => (0, cascade),
            },
        };
        let name = pending.remove(i);
        catalog.drop_table(&name, true, cascade).await?;
    }
    Ok(())
}
