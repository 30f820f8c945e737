//! DataFusion's analyzer, optimizer and physical optimizer rules wrapped so
//! each checks the statement's [`Interrupt`](crate::interrupt::Interrupt)
//! before it runs: planning stops at the next rule once a statement is
//! cancelled or past its `statement_timeout` (DataFusion itself has no
//! cancellation hook in planning).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use crate::interrupt::check_current;

fn check() -> Result<()> {
    check_current().map_err(|e| e.into_datafusion())
}

#[derive(Debug)]
struct Analyzer(Arc<dyn AnalyzerRule + Send + Sync>);

impl AnalyzerRule for Analyzer {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        check()?;
        self.0.analyze(plan, config)
    }

    fn name(&self) -> &str {
        self.0.name()
    }
}

#[derive(Debug)]
struct Optimizer(Arc<dyn OptimizerRule + Send + Sync>);

impl OptimizerRule for Optimizer {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        check()?;
        self.0.rewrite(plan, config)
    }
}

#[derive(Debug)]
struct Physical(Arc<dyn PhysicalOptimizerRule + Send + Sync>);

impl PhysicalOptimizerRule for Physical {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        check()?;
        self.0.optimize(plan, config)
    }

    fn optimize_with_context(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        context: &dyn datafusion::physical_optimizer::PhysicalOptimizerContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        check()?;
        self.0.optimize_with_context(plan, context)
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn schema_check(&self) -> bool {
        self.0.schema_check()
    }
}

/// `state` with every planning rule checking the current interrupt.
pub fn interruptible(state: SessionState) -> SessionState {
    let mut builder = SessionStateBuilder::new_from_existing(state);
    if let Some(analyzer) = builder.analyzer() {
        for rule in &mut analyzer.rules {
            *rule = Arc::new(Analyzer(rule.clone()));
        }
    }
    if let Some(optimizer) = builder.optimizer() {
        for rule in &mut optimizer.rules {
            *rule = Arc::new(Optimizer(rule.clone()));
        }
    }
    if let Some(physical) = builder.physical_optimizers() {
        for rule in &mut physical.rules {
            *rule = Arc::new(Physical(rule.clone()));
        }
    }
    builder.build()
}
