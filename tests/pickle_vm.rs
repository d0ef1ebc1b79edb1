//! The pickle VM on hostile structure: reference cycles (a container that contains itself) and
//! absurd nesting. Both used to be silent hazards: a cycle leaked every container in it (an `Rc`
//! cycle is never freed), and dropping a million nested tuples overflowed the stack.

use jukebox::checkpoint::pickle::{parse, Value};
use std::rc::Rc;

/// `{ 'self': <itself> }`: an empty dict, memoized, then a SETITEM whose value is the memo entry.
fn self_dict() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'q', 0];
    p.extend_from_slice(b"X\x04\x00\x00\x00self");
    p.extend_from_slice(&[b'h', 0, b's', b'.']);
    p
}

#[test]
fn a_dict_that_contains_itself_is_refused_clearly() {
    let e = format!("{:#}", parse(&self_dict()).unwrap_err());
    assert!(e.contains("contains itself"), "{e}");
}

#[test]
fn a_cycle_through_a_tuple_is_refused() {
    // l = []; t = (l,); l.append(t); result l
    let p = [0x80, 2, b']', b'q', 0, b'h', 0, 0x85, b'a', b'.'];
    let e = format!("{:#}", parse(&p).unwrap_err());
    assert!(e.contains("contains itself"), "{e}");
}

/// A list `[None]` shared by the result and by a garbage dict that contains itself (built, then
/// popped). Python would free the garbage; the VM must too, or the dict keeps the list alive.
#[test]
fn garbage_cycles_are_freed() {
    let mut p = vec![0x80, 2, b']', b'N', b'a', b'q', 0, b'0']; // memo 0 = [None]
    p.extend_from_slice(&[b'}', b'q', 1]); // memo 1 = {}
    p.extend_from_slice(&[b'K', 1, b'h', 1, b's']); // d[1] = d
    p.extend_from_slice(&[b'K', 2, b'h', 0, b's']); // d[2] = list
    p.extend_from_slice(&[b'0', b'h', 0, b'.']); // drop d, return the list
    let parsed = parse(&p).unwrap();
    let Value::List(l) = &parsed.value else {
        panic!("{:?}", parsed.value)
    };
    assert_eq!(l.borrow().len(), 1);
    // Only the result holds the list: the cyclic dict that also held it is gone.
    assert_eq!(Rc::strong_count(l), 1);
    let weak = Rc::downgrade(l);
    drop(parsed);
    assert!(weak.upgrade().is_none(), "the list outlived its only owner");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // None wrapped in a million 1-tuples, returned.
    let mut p = vec![0x80, 2, b'N'];
    p.extend(std::iter::repeat_n(0x85, 1_000_000));
    p.push(b'.');
    let e = format!("{:#}", parse(&p).unwrap_err());
    assert!(e.contains("nest"), "{e}");
    // Same, popped before the end: nothing may drop it recursively either.
    let mut p = vec![0x80, 2, b'N'];
    p.extend(std::iter::repeat_n(0x85, 1_000_000));
    p.extend_from_slice(b"0N.");
    assert!(matches!(parse(&p).unwrap().value, Value::None));
    // Lists nested by APPEND: `[[[...]]]`.
    let mut p = vec![0x80, 2, b']'];
    for _ in 0..500_000 {
        p.extend_from_slice(b"]");
    }
    p.extend(std::iter::repeat_n(b'a', 500_000));
    p.push(b'.');
    let e = format!("{:#}", parse(&p).unwrap_err());
    assert!(e.contains("nest"), "{e}");
}

#[test]
fn ordinary_nesting_and_sharing_still_load() {
    // 100 levels of tuples, and one list referenced twice (a DAG, not a cycle).
    let mut p = vec![0x80, 2, b'N'];
    p.extend(std::iter::repeat_n(0x85, 100));
    p.extend_from_slice(&[b']', b'q', 0, b'h', 0, 0x87, b'.']);
    let v = parse(&p).unwrap().value;
    let items = v.items().unwrap();
    assert_eq!(items.len(), 3);
    let mut depth = 0;
    let mut x = items[0].clone();
    while let Value::Tuple(t) = x {
        depth += 1;
        x = t[0].clone();
    }
    assert_eq!(depth, 100);
    let (Value::List(a), Value::List(b)) = (&items[1], &items[2]) else {
        panic!("{items:?}")
    };
    assert!(Rc::ptr_eq(a, b));
}
