//! The steps of ALTER TABLE jobs. The statement makes the first step (a
//! column goes write-only, a constraint is enforced by writers) in the
//! transaction that creates the job; the job then waits until every node
//! uses that version, checks the existing rows where the change needs it
//! ([`super::validate`]), and makes the change visible. The step a job is at
//! is read off the stored descriptor, so an adopted job goes on from there.

use super::claim::Claim;
use super::validate::{Validation, contains_nulls, table_is_empty, validate};
use super::{JobRecord, TableChange};
use crate::catalog::descriptor::TableDescriptor;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;

/// Where a column of the change stands in the stored descriptor.
enum ColumnAt {
    Hidden,
    Visible,
    Absent,
}

fn column_at(desc: &TableDescriptor, id: u32) -> ColumnAt {
    if desc.hidden_columns.iter().any(|c| c.id == id) {
        ColumnAt::Hidden
    } else if desc.columns.iter().any(|c| c.id == id) {
        ColumnAt::Visible
    } else {
        ColumnAt::Absent
    }
}

fn table_gone() -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_TABLE,
        "the table of the schema change was dropped",
    )
}

fn check_gone(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("constraint \"{name}\" was dropped during the schema change"),
    )
}

/// The descriptor edit a step makes.
#[derive(Clone)]
enum Edit {
    /// The step changes only the job record.
    Nothing,
    /// A write-only column being added becomes visible.
    Publish(u32),
    /// A write-only column goes away.
    RemoveHidden(u32),
    /// A column's checked NOT NULL is declared.
    DeclareNotNull(u32),
    /// A column's NOT NULL check in progress is dropped.
    AbandonNotNull(u32),
    /// A CHECK or FOREIGN KEY is marked validated.
    Validated(String),
    /// A CHECK or FOREIGN KEY goes away.
    RemoveConstraint(String),
}

impl Edit {
    /// Applies the edit to `desc`; whether it changed it.
    fn apply(&self, desc: &mut TableDescriptor) -> bool {
        match self {
            Edit::Nothing => false,
            Edit::Publish(id) => {
                let Some(pos) = desc.hidden_columns.iter().position(|c| c.id == *id) else {
                    return false;
                };
                let mut column = desc.hidden_columns.remove(pos);
                // Rows written before this version have no field of the
                // column: they read its missing value.
                if let Some(m) = column.missing.as_mut() {
                    m.before_version = desc.version + 1;
                }
                desc.columns.push(column);
                true
            }
            Edit::RemoveHidden(id) => {
                let before = desc.hidden_columns.len();
                desc.hidden_columns.retain(|c| c.id != *id);
                desc.hidden_columns.len() != before
            }
            Edit::DeclareNotNull(id) | Edit::AbandonNotNull(id) => {
                let declare = matches!(self, Edit::DeclareNotNull(_));
                match desc.columns.iter_mut().find(|c| c.id == *id) {
                    Some(c) if c.validating_not_null => {
                        c.validating_not_null = false;
                        if declare {
                            c.nullable = false;
                        }
                        true
                    }
                    _ => false,
                }
            }
            Edit::Validated(name) => {
                if let Some(c) = desc.checks.iter_mut().find(|c| &c.name == name) {
                    return !std::mem::replace(&mut c.validated, true);
                }
                match desc.foreign_keys.iter_mut().find(|f| &f.name == name) {
                    Some(f) => !std::mem::replace(&mut f.validated, true),
                    None => false,
                }
            }
            Edit::RemoveConstraint(name) => {
                let before = desc.checks.len() + desc.foreign_keys.len();
                desc.checks.retain(|c| &c.name != name);
                desc.foreign_keys.retain(|f| &f.name != name);
                desc.checks.len() + desc.foreign_keys.len() != before
            }
        }
    }
}

/// Commits `edit` with the job record; `last` ends the job (`done` forward,
/// reverted backward).
async fn commit(claim: &Claim, edit: Edit, step: &str, last: Option<bool>) -> SqlResult<()> {
    claim
        .transact(move |_, desc, job| {
            job.step = step.to_string();
            match last {
                Some(true) => job.succeed(),
                Some(false) => job.reverted(),
                None => {}
            }
            Ok(desc.is_some_and(|d| edit.apply(d)))
        })
        .await
        .map(|_| ())
}

/// One step forward of `change` on table `table_id`.
pub(super) async fn forward(
    claim: &Claim,
    job: &JobRecord,
    table_id: u32,
    change: &TableChange,
    interrupt: &Interrupt,
) -> SqlResult<()> {
    let desc = claim.stored_table(table_id).await?.ok_or_else(table_gone)?;
    let none = Interrupt::none();
    match change {
        TableChange::Metadata => {
            claim.wait_for_leases(&none, false).await?;
            commit(claim, Edit::Nothing, "done", Some(true)).await
        }
        TableChange::AddColumn { column_id } => match column_at(&desc, *column_id) {
            ColumnAt::Hidden => {
                claim.wait_for_leases(interrupt, true).await?;
                let column = desc
                    .hidden_columns
                    .iter()
                    .find(|c| c.id == *column_id)
                    .ok_or_else(table_gone)?;
                // NOT NULL without a default: only an empty table can take
                // it (writers refuse inserts meanwhile).
                if !column.nullable
                    && column.missing.is_none()
                    && !table_is_empty(claim, table_id).await?
                {
                    return Err(contains_nulls(&column.name, &desc.name));
                }
                commit(claim, Edit::Publish(*column_id), "done", Some(true)).await
            }
            ColumnAt::Visible => commit(claim, Edit::Nothing, "done", Some(true)).await,
            ColumnAt::Absent => Err(table_gone()),
        },
        TableChange::DropColumn { column_id } => match column_at(&desc, *column_id) {
            ColumnAt::Hidden => {
                claim.wait_for_leases(&none, false).await?;
                commit(claim, Edit::RemoveHidden(*column_id), "done", Some(true)).await
            }
            ColumnAt::Visible | ColumnAt::Absent => {
                commit(claim, Edit::Nothing, "done", Some(true)).await
            }
        },
        TableChange::SetNotNull { column_id } => {
            let column = desc
                .columns
                .iter()
                .find(|c| c.id == *column_id)
                .ok_or_else(table_gone)?;
            if !column.validating_not_null {
                return commit(claim, Edit::Nothing, "done", Some(true)).await;
            }
            claim.wait_for_leases(interrupt, true).await?;
            if !job.backfilled {
                return validate(claim, table_id, &Validation::NotNull(*column_id), interrupt)
                    .await;
            }
            commit(claim, Edit::DeclareNotNull(*column_id), "done", Some(true)).await
        }
        TableChange::AddConstraint { name } | TableChange::ValidateConstraint { name } => {
            let validated = desc
                .checks
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.validated)
                .or_else(|| {
                    desc.foreign_keys
                        .iter()
                        .find(|f| &f.name == name)
                        .map(|f| f.validated)
                })
                .ok_or_else(|| check_gone(name))?;
            if validated {
                return commit(claim, Edit::Nothing, "done", Some(true)).await;
            }
            claim.wait_for_leases(interrupt, true).await?;
            if !job.backfilled {
                return validate(
                    claim,
                    table_id,
                    &Validation::Constraint(name.clone()),
                    interrupt,
                )
                .await;
            }
            commit(claim, Edit::Validated(name.clone()), "done", Some(true)).await
        }
    }
}

/// One step back of a failed or canceled `change`: what the statement's
/// first step did is undone in one transaction.
pub(super) async fn backward(claim: &Claim, change: &TableChange) -> SqlResult<()> {
    let edit = match change {
        TableChange::AddColumn { column_id } => Edit::RemoveHidden(*column_id),
        TableChange::SetNotNull { column_id } => Edit::AbandonNotNull(*column_id),
        TableChange::AddConstraint { name } => Edit::RemoveConstraint(name.clone()),
        TableChange::ValidateConstraint { .. }
        | TableChange::Metadata
        | TableChange::DropColumn { .. } => Edit::Nothing,
    };
    commit(claim, edit, "reverted", Some(false)).await
}
