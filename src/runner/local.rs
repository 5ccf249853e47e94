//! Local process executor (placeholder until the runner work lands).

use super::{Cancel, Executor, Job, RunOutcome, RunnerError};

#[derive(Default)]
pub struct LocalExecutor;

impl LocalExecutor {
    pub fn new() -> Self {
        LocalExecutor
    }
}

pub fn processes_with_env(_key: &str, _value: &str) -> Vec<i32> {
    Vec::new()
}

impl Executor for LocalExecutor {
    fn run(&self, _: &Job, _: &Cancel, _: &mut dyn FnMut(&str)) -> Result<RunOutcome, RunnerError> {
        unimplemented!()
    }
}

pub fn kill_processes_with_env(_key: &str, _value: &str) -> usize {
    0
}
