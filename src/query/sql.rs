//! Building a filtered SELECT: conditions joined with AND, every value a numbered parameter
//! (never spliced into the SQL), shared by the row reports so they build queries one way.

use rusqlite::types::Value;

#[derive(Default)]
pub struct Conditions {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    /// Binds `value` and returns its placeholder (`?N`) for use in a condition.
    pub fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    pub fn push(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Appends ` WHERE a AND b ...` (if there is any condition) to `sql`; returns the parameters.
    pub fn finish(self, sql: &mut String) -> Vec<Value> {
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        self.params
    }
}
