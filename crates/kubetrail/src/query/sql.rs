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

/// The labels of the pod row `pod` (a table alias) as a JSON column, or NULL when `wanted` is
/// false: they live in `label_sets` (migration 0004), one lookup per row, so only a label
/// selector pays for them.
pub fn labels_column(pod: &str, wanted: bool) -> String {
    if wanted {
        format!("(SELECT labels FROM label_sets WHERE id = {pod}.label_set_id)")
    } else {
        "NULL".to_string()
    }
}
