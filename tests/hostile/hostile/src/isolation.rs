//! A method that looks for what earlier calls left behind in the instance's memory: the host
//! gives every call a fresh instance, so a pooled memory slot must come back exactly as the
//! component's image left it, whatever the call before wrote.

use super::Globals;
use super::limits::NoArgs;
use orch_plugin_sdk::{Ctx, Result, Value, error, json};
use std::alloc::{Layout, alloc, dealloc};

/// Initialized data: it lives in the memory image, so a slot that is not reset shows the
/// `tampered` a previous call wrote.
static mut MARK: [u8; 8] = *b"original";

/// The heap blocks looked at: a small one (within the memory the component starts with) and
/// one of 4 MiB (memory grown by the call, and more dirty pages than the host keeps resident).
const BLOCKS: [usize; 2] = [32 << 10, 4 << 20];

fn mark() -> [u8; 8] {
    // SAFETY: a component instance runs one call on one thread.
    unsafe { std::ptr::read_volatile(&raw const MARK) }
}

fn set_mark(value: [u8; 8]) {
    // SAFETY: as above.
    unsafe { std::ptr::write_volatile(&raw mut MARK, value) }
}

/// What a call writes over its heap blocks for a later call to find.
const SIGNATURE: &[u8; 16] = b"snoop-was-here!!";

/// Allocates a block of each of `BLOCKS`' sizes, counts the copies of [`SIGNATURE`] each
/// holds (reading a block before writing it is what a snooping plugin does; in wasm it reads
/// whatever the linear memory holds), fills each with the signature and frees them. Every
/// block is allocated before any is freed: a freed block's payload holds the allocator's own
/// list pointers, not a call's data.
fn signatures_then_taint() -> Vec<usize> {
    let layouts = BLOCKS.map(|len| Layout::from_size_align(len, 8).expect("a valid layout"));
    // SAFETY: each layout has a non-zero size, and each block is only touched within it.
    unsafe {
        let blocks = layouts.map(|layout| alloc(layout));
        assert!(blocks.iter().all(|b| !b.is_null()), "out of memory");
        let found = blocks
            .iter()
            .zip(&layouts)
            .map(|(&block, layout)| {
                let bytes: Vec<u8> = (0..layout.size())
                    .map(|i| std::ptr::read_volatile(block.add(i)))
                    .collect();
                bytes
                    .windows(SIGNATURE.len())
                    .filter(|w| w == SIGNATURE)
                    .count()
            })
            .collect();
        for (&block, layout) in blocks.iter().zip(&layouts) {
            for i in 0..layout.size() {
                block.add(i).write(SIGNATURE[i % SIGNATURE.len()]);
            }
            dealloc(block, *layout);
        }
        found
    }
}

/// Fails when this instance's memory holds anything an earlier call wrote; then writes marks
/// of its own for the next call to find. It first proves it can see such marks: within one
/// instance, what it wrote must show up again.
pub fn snoop(_: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    let seen_mark = mark();
    let found = signatures_then_taint();
    set_mark(*b"tampered");
    // The self-check: a second look in this same instance sees this call's own marks.
    let again = signatures_then_taint();
    if mark() != *b"tampered" || again.contains(&0) {
        return Err(error::failed(format!(
            "snoop cannot see its own marks (heap {again:?}); it would miss another call's"
        )));
    }
    if seen_mark != *b"original" || found.iter().any(|&n| n > 0) {
        return Err(error::failed(format!(
            "saw an earlier call's memory: static {:?}, heap signatures {found:?}",
            String::from_utf8_lossy(&seen_mark)
        )));
    }
    Ok(json!({ "clean": true }))
}
