//! `dependsOn` conditions and the statuses they test.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::repo::deserialize_via;

/// How a step (or a whole job) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Ran and succeeded.
    Succeeded,
    /// Ran and failed (possibly with `allowFailure`).
    Failed,
    /// Never ran: a condition or guard did not hold.
    Skipped,
    /// A `manual_approval` step waiting for a decision; what depends on it has not started.
    Waiting,
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Waiting => "waiting",
        })
    }
}

/// When a dependency counts as satisfied, tested against the dependency's final status.
// Read through `RawCondition`: serde's tagged enums buffer the mapping and lose the path and
// line of errors in nested conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Condition {
    /// The dependency succeeded (the default when `condition` is omitted).
    Succeeded,
    /// The dependency failed.
    Failed,
    /// The dependency ran, whether it succeeded or failed.
    Completed,
    /// The dependency finished in any way, including being skipped.
    Always,
    /// The dependency was skipped.
    Skipped,
    /// Every inner condition holds.
    And {
        /// The inner conditions.
        conditions: Vec<Condition>,
    },
    /// At least one inner condition holds.
    Or {
        /// The inner conditions.
        conditions: Vec<Condition>,
    },
    /// The inner condition does not hold.
    Not {
        /// The inner condition.
        condition: Box<Condition>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConditionType {
    Succeeded,
    Failed,
    Completed,
    Always,
    Skipped,
    And,
    Or,
    Not,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(rename = "type")]
    kind: ConditionType,
    #[serde(default)]
    conditions: Option<Vec<Condition>>,
    #[serde(default)]
    condition: Option<Box<Condition>>,
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via::<D, RawCondition, Condition>(deserializer, "a mapping with a `type` field")
    }
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;
    fn try_from(raw: RawCondition) -> Result<Condition, String> {
        use ConditionType as T;
        let name = match raw.kind {
            T::Succeeded => "succeeded",
            T::Failed => "failed",
            T::Completed => "completed",
            T::Always => "always",
            T::Skipped => "skipped",
            T::And => "and",
            T::Or => "or",
            T::Not => "not",
        };
        let takes_list = matches!(raw.kind, T::And | T::Or);
        let takes_one = matches!(raw.kind, T::Not);
        if raw.conditions.is_some() && !takes_list {
            return Err(format!(
                "`conditions` only belongs to `type: and` or `type: or`, not `type: {name}`; remove it"
            ));
        }
        if raw.condition.is_some() && !takes_one {
            return Err(format!(
                "`condition` only belongs to `type: not`, not `type: {name}`; remove it"
            ));
        }
        let list = |c: Option<Vec<Condition>>| {
            c.ok_or_else(|| {
                format!("missing field `conditions`; `type: {name}` needs a list of conditions")
            })
        };
        Ok(match raw.kind {
            T::Succeeded => Condition::Succeeded,
            T::Failed => Condition::Failed,
            T::Completed => Condition::Completed,
            T::Always => Condition::Always,
            T::Skipped => Condition::Skipped,
            T::And => Condition::And {
                conditions: list(raw.conditions)?,
            },
            T::Or => Condition::Or {
                conditions: list(raw.conditions)?,
            },
            T::Not => Condition::Not {
                condition: raw.condition.ok_or_else(|| {
                    "missing field `condition`; `type: not` needs the condition to negate"
                        .to_string()
                })?,
            },
        })
    }
}

/// The condition used when a `dependsOn` entry gives none.
pub static DEFAULT_CONDITION: Condition = Condition::Succeeded;

impl Condition {
    /// Whether the condition holds for a dependency that ended with `status`.
    pub fn holds(&self, status: StepStatus) -> bool {
        match self {
            Condition::Succeeded => status == StepStatus::Succeeded,
            Condition::Failed => status == StepStatus::Failed,
            Condition::Completed => status != StepStatus::Skipped,
            Condition::Always => true,
            Condition::Skipped => status == StepStatus::Skipped,
            Condition::And { conditions } => conditions.iter().all(|c| c.holds(status)),
            Condition::Or { conditions } => conditions.iter().any(|c| c.holds(status)),
            Condition::Not { condition } => !condition.holds(status),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, cs: &[Condition]| {
            write!(f, "{name}(")?;
            for (i, c) in cs.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Condition::Succeeded => f.write_str("succeeded"),
            Condition::Failed => f.write_str("failed"),
            Condition::Completed => f.write_str("completed"),
            Condition::Always => f.write_str("always"),
            Condition::Skipped => f.write_str("skipped"),
            Condition::And { conditions } => list(f, "and", conditions),
            Condition::Or { conditions } => list(f, "or", conditions),
            Condition::Not { condition } => write!(f, "not({condition})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    fn parse(text: &str) -> Condition {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn simple_conditions_match_their_statuses() {
        let table = [
            (Condition::Succeeded, [true, false, false]),
            (Condition::Failed, [false, true, false]),
            (Condition::Completed, [true, true, false]),
            (Condition::Always, [true, true, true]),
            (Condition::Skipped, [false, false, true]),
        ];
        for (cond, expected) in table {
            let got = [Succeeded, Failed, Skipped].map(|s| cond.holds(s));
            assert_eq!(got, expected, "{cond}");
        }
    }

    #[test]
    fn nested_conditions_are_read_and_combined() {
        let c = parse(
            "type: and\nconditions:\n  - type: completed\n  - type: not\n    condition: { type: failed }\n",
        );
        assert!(c.holds(Succeeded));
        assert!(!c.holds(Failed));
        assert!(!c.holds(Skipped));
        assert_eq!(c.to_string(), "and(completed, not(failed))");
        let c = parse("type: or\nconditions: [{type: failed}, {type: skipped}]\n");
        assert!(!c.holds(Succeeded));
        assert!(c.holds(Failed));
        assert!(c.holds(Skipped));
    }

    #[test]
    fn empty_and_holds_and_empty_or_does_not() {
        assert!(parse("{type: and, conditions: []}").holds(Failed));
        assert!(!parse("{type: or, conditions: []}").holds(Succeeded));
    }

    #[test]
    fn unknown_condition_type_is_rejected() {
        let err = serde_yaml_ng::from_str::<Condition>("type: succeded\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `succeded`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_condition_field_is_rejected() {
        let err = serde_yaml_ng::from_str::<Condition>("type: not\ncondtion: {type: failed}\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `condtion`"),
            "{err}"
        );
    }
}
