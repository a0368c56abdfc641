//! Limits on what one expression may ask of the host.
//!
//! The `cel` crate recurses once per level of an expression (parsing, evaluating, dropping) and
//! has no budget or step hook of its own. So the host bounds expressions in three layers:
//! - before parsing: the text's length, which bounds how deep the parser can recurse;
//! - after parsing ([`check_shape`]): how deep the tree nests and how deep comprehensions nest,
//!   which bounds how deep evaluation recurses; both are reported by `orch workflow validate`;
//! - while evaluating ([`instrument`]): the tree gets calls to hidden functions that charge every
//!   comprehension iteration and every value the expression builds to a budget of steps and
//!   bytes, and check a deadline (see [`super::budget`]), so a nested comprehension or a string
//!   that keeps doubling fails quickly, naming the expression.

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::parser::Expression;

use super::error::ExprErrorKind;

/// Longest expression (the text inside one `${{ }}`), in bytes.
pub const MAX_EXPR_BYTES: usize = 4096;
/// Deepest nesting of an expression's tree: `a + b + c` nests 2 levels, `f(g(x))` 3.
pub const MAX_DEPTH: usize = 64;
/// Deepest nesting of comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`).
pub const MAX_COMPREHENSION_NESTING: usize = 3;

/// Hidden function charging a value to the evaluation's budget: `orch#meter(value, kind, cost)`.
/// `#` cannot appear in a CEL identifier, so no expression can call it itself.
pub(super) const METER: &str = "orch#meter";
/// `s.replace(old, new[, n])`, charging the result's size before building it.
pub(super) const REPLACE: &str = "orch#replace";
/// `list.join([sep])`, charging the result's size before building it.
pub(super) const JOIN: &str = "orch#join";

/// What a meter charges for, passed as its second argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MeterKind {
    /// One comprehension iteration: `cost` steps plus the size of the value it adds.
    Iteration = 0,
    /// A value a call or literal built: one step plus its size when newly built.
    Built = 1,
    /// The list a quadratic function (`distinct`) is about to scan: its length squared.
    Quadratic = 2,
}

impl MeterKind {
    /// The kind a meter's literal argument names.
    pub(super) fn from_arg(n: i64) -> Self {
        match n {
            0 => MeterKind::Iteration,
            2 => MeterKind::Quadratic,
            _ => MeterKind::Built,
        }
    }
}

/// Functions whose result is a scalar (or a value they only pass on): their results are not
/// charged, which keeps common expressions free of metering.
const SCALAR_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "duration",
    "timestamp",
    "indexOf",
    "lastIndexOf",
    "charAt",
    "hasValue",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
];

/// Refuses an expression whose text is too long to parse safely.
pub(super) fn check_length(src: &str) -> Result<(), ExprErrorKind> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(ExprErrorKind::TooComplex(format!(
            "the expression is {} bytes long, more than the {MAX_EXPR_BYTES} allowed; split it \
             into smaller expressions (for example one per input)",
            src.len()
        )));
    }
    Ok(())
}

/// How deeply the parser will recurse on `src`, estimated from its text: the deepest nesting
/// of brackets plus the conditionals (`?`), outside string literals. The parser spends several
/// KiB of stack per level, so only shallow text is parsed on the caller's stack.
pub(super) fn parse_nesting(src: &str) -> usize {
    let bytes = src.as_bytes();
    let (mut depth, mut deepest, mut conditionals) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                match super::template::skip_string(
                    bytes,
                    i,
                    quote,
                    super::template::is_raw(bytes, i),
                ) {
                    Some(next) => {
                        i = next;
                        continue;
                    }
                    // An unterminated string is a syntax error the parser finds at once.
                    None => break,
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'?' => conditionals += 1,
            _ => {}
        }
        i += 1;
    }
    deepest + conditionals
}

/// How a parsed tree is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Shape {
    /// Levels from the root to the deepest leaf, the root counting 1.
    pub depth: usize,
    /// Comprehensions inside comprehensions, at the deepest point.
    pub comprehensions: usize,
}

/// Measures `e` without recursing, so any tree the parser produced can be measured.
pub(super) fn measure(e: &Expression) -> Shape {
    let mut shape = Shape::default();
    let mut stack: Vec<(&Expression, usize, usize)> = vec![(e, 1, 0)];
    while let Some((node, depth, comprehensions)) = stack.pop() {
        let comprehensions =
            comprehensions + usize::from(matches!(node.expr, Expr::Comprehension(_)));
        shape.depth = shape.depth.max(depth);
        shape.comprehensions = shape.comprehensions.max(comprehensions);
        for child in children(node) {
            stack.push((child, depth + 1, comprehensions));
        }
    }
    shape
}

/// How deep evaluating `e` recurses in the interpreter: one level per node, except that a
/// dotted name (`model.fleet.resource.vm`) is looked up in one step.
pub(super) fn eval_depth(e: &Expression) -> usize {
    fn is_name(mut e: &Expression) -> bool {
        loop {
            match &e.expr {
                Expr::Ident(_) => return true,
                Expr::Select(sel) if !sel.test => e = &sel.operand,
                _ => return false,
            }
        }
    }
    let mut deepest = 0;
    let mut stack: Vec<(&Expression, usize)> = vec![(e, 1)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if let Expr::Select(sel) = &node.expr
            && is_name(&sel.operand)
        {
            continue;
        }
        for child in children(node) {
            stack.push((child, depth + 1));
        }
    }
    deepest
}

/// Refuses a tree nested too deeply to evaluate safely.
pub(super) fn check_shape(shape: Shape) -> Result<(), ExprErrorKind> {
    if shape.depth > MAX_DEPTH {
        return Err(ExprErrorKind::TooComplex(format!(
            "the expression nests {} levels deep, more than the {MAX_DEPTH} allowed (a long \
             chain of operators such as `a + b + c + …` nests one level per operator); split it \
             into smaller expressions",
            shape.depth
        )));
    }
    if shape.comprehensions > MAX_COMPREHENSION_NESTING {
        return Err(ExprErrorKind::TooComplex(format!(
            "comprehensions (map, filter, all, exists, exists_one) nest {} deep, more than the \
             {MAX_COMPREHENSION_NESTING} allowed; their cost multiplies with each level",
            shape.comprehensions
        )));
    }
    Ok(())
}

/// The direct subexpressions of `e`, comprehension parts included. (Parts that use a loop
/// variable fail to evaluate on their own with an undeclared reference, never a missing key,
/// so the diagnosis of a missing key passes over them.)
pub(super) fn children(e: &Expression) -> Vec<&Expression> {
    fn entry_parts(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&Expression> {
        entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                EntryExpr::StructField(sf) => vec![&sf.value],
            })
            .collect()
    }
    match &e.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &**t)
            .chain(call.args.iter())
            .collect(),
        Expr::Select(sel) => vec![&*sel.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entry_parts(&map.entries),
        Expr::Struct(st) => entry_parts(&st.entries),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// Adds the budget's meters to a tree that passed [`check_shape`] (so recursing over it is
/// bounded by [`MAX_DEPTH`]).
pub(super) fn instrument(e: Expression) -> Expression {
    Instrument { in_loop: false }.expr(e)
}

/// How the tree around the node being instrumented is evaluated.
#[derive(Clone, Copy)]
struct Instrument {
    /// Inside a comprehension's loop, where every node runs once per iteration.
    in_loop: bool,
}

impl Instrument {
    fn expr(self, e: Expression) -> Expression {
        let instrument = |e| self.expr(e);
        let IdedExpr { id, expr } = e;
        match expr {
            Expr::Call(call) => self.call(id, call),
            Expr::Comprehension(mut c) => {
                let cost = i64::try_from(count_nodes(&c.loop_cond) + count_nodes(&c.loop_step))
                    .unwrap_or(i64::MAX)
                    .max(1);
                c.iter_range = instrument(c.iter_range);
                c.accu_init = instrument(c.accu_init);
                c.result = instrument(c.result);
                let body = Instrument { in_loop: true };
                c.loop_cond = body.expr(c.loop_cond);
                let accu = c.accu_var.clone();
                c.loop_step = body.step(c.loop_step, &accu, cost);
                IdedExpr {
                    id,
                    expr: Expr::Comprehension(c),
                }
            }
            Expr::Select(mut sel) => {
                *sel.operand = instrument(std::mem::take(&mut *sel.operand));
                IdedExpr {
                    id,
                    expr: Expr::Select(sel),
                }
            }
            Expr::List(mut list) => {
                list.elements = list.elements.into_iter().map(instrument).collect();
                meter(
                    IdedExpr {
                        id,
                        expr: Expr::List(list),
                    },
                    MeterKind::Built,
                    1,
                )
            }
            Expr::Map(mut map) => {
                for entry in &mut map.entries {
                    self.entry(&mut entry.expr);
                }
                meter(
                    IdedExpr {
                        id,
                        expr: Expr::Map(map),
                    },
                    MeterKind::Built,
                    1,
                )
            }
            Expr::Struct(mut st) => {
                for entry in &mut st.entries {
                    self.entry(&mut entry.expr);
                }
                meter(
                    IdedExpr {
                        id,
                        expr: Expr::Struct(st),
                    },
                    MeterKind::Built,
                    1,
                )
            }
            expr @ (Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified) => IdedExpr { id, expr },
        }
    }

    fn entry(self, entry: &mut EntryExpr) {
        match entry {
            EntryExpr::MapEntry(me) => {
                me.key = self.expr(std::mem::take(&mut me.key));
                me.value = self.expr(std::mem::take(&mut me.value));
            }
            EntryExpr::StructField(sf) => sf.value = self.expr(std::mem::take(&mut sf.value)),
        }
    }

    fn call(self, id: u64, mut call: CallExpr) -> Expression {
        if let Some(target) = call.target.as_mut() {
            **target = self.expr(std::mem::take(&mut **target));
        }
        call.args = call.args.into_iter().map(|a| self.expr(a)).collect();
        let name = call.func_name.as_str();
        let member = call.target.is_some();
        // Functions whose result can be far larger than their arguments are replaced by versions
        // that charge the result's size before they build it.
        if member && name == "replace" {
            call.func_name = REPLACE.to_string();
        } else if member && name == "join" {
            call.func_name = JOIN.to_string();
        } else if member
            && name == "distinct"
            && let Some(target) = call.target.as_mut()
        {
            **target = meter(std::mem::take(&mut **target), MeterKind::Quadratic, 1);
        }
        let builds = match call.func_name.as_str() {
            // Outside a loop, `+` on data or literals runs once and copies at most what exists;
            // only chains of it (or any `+` in a loop) can grow without end.
            operators::ADD => self.in_loop || call.args.iter().any(builds_value),
            operators::OPT_INDEX | operators::OPT_SELECT => true,
            // They charge their result themselves, before building it.
            REPLACE | JOIN => false,
            n if n.starts_with('_') || n.starts_with('@') || n.starts_with('!') => false,
            n if n.starts_with("-") => false,
            n if n.starts_with("math.") => false,
            n => !SCALAR_FUNCTIONS.contains(&n),
        };
        let node = IdedExpr {
            id,
            expr: Expr::Call(call),
        };
        if builds {
            meter(node, MeterKind::Built, 1)
        } else {
            node
        }
    }

    /// Instruments a comprehension's loop step without changing its shape: the interpreter
    /// recognises `@result + [x]`, `c ? @result + [x] : @result` and `@result && x` and runs them
    /// faster, so the meters go around the parts the user wrote, not around the accumulator.
    fn step(self, step: Expression, accu: &str, cost: i64) -> Expression {
        let instrument = |e| self.expr(e);
        let is_accu = |e: &Expression| matches!(&e.expr, Expr::Ident(n) if n == accu);
        if is_accu(&step) || matches!(step.expr, Expr::Literal(_)) {
            return step;
        }
        let IdedExpr { id, expr } = step;
        match expr {
            Expr::Call(mut call)
                if call.target.is_none()
                    && call.func_name == operators::CONDITIONAL
                    && call.args.len() == 3 =>
            {
                let mut args = std::mem::take(&mut call.args).into_iter();
                let (Some(cond), Some(then), Some(otherwise)) =
                    (args.next(), args.next(), args.next())
                else {
                    return IdedExpr {
                        id,
                        expr: Expr::Call(call),
                    };
                };
                call.args = vec![
                    meter(instrument(cond), MeterKind::Iteration, cost),
                    self.step(then, accu, cost),
                    self.step(otherwise, accu, cost),
                ];
                IdedExpr {
                    id,
                    expr: Expr::Call(call),
                }
            }
            Expr::Call(mut call)
                if call.target.is_none()
                    && call.args.len() == 2
                    && is_accu(&call.args[0])
                    && matches!(
                        call.func_name.as_str(),
                        operators::ADD | operators::LOGICAL_AND | operators::LOGICAL_OR
                    ) =>
            {
                let rhs = call.args.pop().unwrap_or_default();
                let rhs = match rhs.expr {
                    Expr::List(mut list) => {
                        list.elements = list
                            .elements
                            .into_iter()
                            .map(|item| meter(instrument(item), MeterKind::Iteration, cost))
                            .collect();
                        IdedExpr {
                            id: rhs.id,
                            expr: Expr::List(list),
                        }
                    }
                    Expr::Literal(_) => rhs,
                    _ => meter(instrument(rhs), MeterKind::Iteration, cost),
                };
                call.args.push(rhs);
                IdedExpr {
                    id,
                    expr: Expr::Call(call),
                }
            }
            expr => meter(
                instrument(IdedExpr { id, expr }),
                MeterKind::Iteration,
                cost,
            ),
        }
    }
}

/// True when evaluating `e` may build a new value rather than read one that exists.
fn builds_value(e: &Expression) -> bool {
    matches!(
        e.expr,
        Expr::Call(_) | Expr::List(_) | Expr::Map(_) | Expr::Struct(_) | Expr::Comprehension(_)
    )
}

/// How many nodes `e` has, without recursing.
fn count_nodes(e: &Expression) -> usize {
    let mut count = 0;
    let mut stack = vec![e];
    while let Some(node) = stack.pop() {
        count += 1;
        stack.extend(children(node));
    }
    count
}

fn meter(e: Expression, kind: MeterKind, cost: i64) -> Expression {
    IdedExpr {
        id: e.id,
        expr: Expr::Call(CallExpr {
            func_name: METER.to_string(),
            target: None,
            args: vec![e, int_literal(kind as i64), int_literal(cost)],
        }),
    }
}

fn int_literal(n: i64) -> Expression {
    IdedExpr {
        id: 0,
        expr: Expr::Literal(LiteralValue::Int(n.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Expression {
        cel::Env::stdlib().parser().parse(src).expect("parses")
    }

    #[test]
    fn shape_counts_levels_and_comprehension_nesting() {
        assert_eq!(measure(&parse("1")).depth, 1);
        assert_eq!(measure(&parse("1 + 2 + 3")).depth, 3);
        let shape = measure(&parse("[1].map(a, [2].exists(b, b == a))"));
        assert_eq!(shape.comprehensions, 2);
        assert_eq!(
            eval_depth(&parse("model.fleet.resource.vm.web1.attributes.ip")),
            1
        );
        assert_eq!(eval_depth(&parse("model.a[inputs.b].c")), 3);
    }

    #[test]
    fn meters_keep_the_loop_shapes_the_interpreter_runs_fast() {
        let map = instrument(parse("[1, 2].map(x, x * 2)"));
        let Expr::Comprehension(c) = &map.expr else {
            panic!("{map:?}");
        };
        let Expr::Call(step) = &c.loop_step.expr else {
            panic!("{:?}", c.loop_step);
        };
        assert_eq!(step.func_name, operators::ADD);
        assert!(matches!(&step.args[0].expr, Expr::Ident(n) if *n == c.accu_var));
        let Expr::List(items) = &step.args[1].expr else {
            panic!("{step:?}");
        };
        assert!(matches!(&items.elements[0].expr, Expr::Call(m) if m.func_name == METER));
    }

    #[test]
    fn only_values_that_can_grow_are_metered() {
        let metered = |src: &str| format!("{:?}", instrument(parse(src))).contains(METER);
        assert!(!metered(
            "model.fleet.resource.vm[inputs.vmName].attributes.ip"
        ));
        assert!(!metered("inputs.count + 1"));
        assert!(!metered("size(inputs.list) > 2 && inputs.a == 'x'"));
        assert!(metered("inputs.a + inputs.b + inputs.c"));
        assert!(metered("[inputs.a]"));
        let replace = format!("{:?}", instrument(parse("inputs.s.replace('a', 'b')")));
        assert!(
            replace.contains(REPLACE) && !replace.contains(METER),
            "{replace}"
        );
        assert!(metered("inputs.list.map(x, x)"));
    }
}
