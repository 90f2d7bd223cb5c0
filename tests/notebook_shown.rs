//! `Engine::eval_shown`, the notebook front end's entry point: a final array or table is
//! left uncomputed and bound in the session; everything else is computed as `eval_value`.

use tessera::data::Buf;
use tessera::exec::Safeguards;
use tessera::{Computed, Engine, RunOptions};

fn opts() -> RunOptions {
    RunOptions {
        workers: 2,
        ..RunOptions::default()
    }
}

#[test]
fn a_final_array_is_lazy_and_bound_under_the_given_name() {
    let mut e = Engine::new();
    let g = Safeguards::default();
    let r = e
        .eval_shown(
            "let a = arange(12).reshape([3, 4]).rechunk([2, 2])\na * 2",
            "_c1",
            &opts(),
            &g,
        )
        .expect("cell");
    let Computed::Lazy(l) = r.value else {
        panic!("expected a lazy array, got {:?}", r.value)
    };
    assert_eq!(
        (l.shape.clone(), l.chunks.clone()),
        (vec![3, 4], vec![2, 2])
    );
    assert_eq!(l.name, "_c1");
    assert!(
        l.summary.contains("4 chunks") && l.summary.contains("tasks"),
        "{}",
        l.summary
    );
    assert_eq!(r.report.tasks, 0, "nothing is computed for a lazy value");
    let v = e
        .eval_value("_c1", &opts(), &g)
        .expect("evaluate the bound name");
    let Computed::Array { values, shape } = v.value else {
        panic!("expected an array")
    };
    assert_eq!(shape, vec![3, 4]);
    let want: Vec<i64> = (0..12).map(|i| i * 2).collect();
    match values {
        Buf::I64(v) => assert_eq!(v, want),
        other => panic!("unexpected dtype {:?}", other.dtype()),
    }
}

#[test]
fn scalars_are_computed_and_tables_are_bound() {
    let mut e = Engine::new();
    let g = Safeguards::default();
    let r = e
        .eval_shown("arange(10).sum()", "_c1", &opts(), &g)
        .expect("cell");
    match r.value {
        Computed::Array {
            values: Buf::I64(v),
            shape,
        } => {
            assert!(shape.is_empty());
            assert_eq!(v, vec![45]);
        }
        other => panic!("expected a computed 0-d array, got {other:?}"),
    }
    let r = e
        .eval_shown(
            "regionprops(label(arange(16).reshape([4, 4]) > 7))",
            "_t",
            &opts(),
            &g,
        )
        .expect("cell");
    assert!(
        matches!(&r.value, Computed::Table { name, label } if name == "_t" && label.contains("regionprops")),
        "{:?}",
        r.value
    );
}
