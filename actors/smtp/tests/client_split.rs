//! Chunk-split tests: every transcript, with each server write cut at every offset and in
//! pieces of every size, must give exactly the events and bytes it gives when fed whole
//! (the scripts assert both, so passing under every split means identical behaviour).

mod client_support;

use client_support::scripts::scripts;
use client_support::{longest_server_step, run, Feed};

#[test]
fn every_script_split_at_every_offset() {
    for (name, script) in scripts() {
        for at in 0..=longest_server_step(&script) {
            run(name, &script, Feed::SplitAt(at));
        }
    }
}

#[test]
fn every_script_in_chunks_of_every_size() {
    for (name, script) in scripts() {
        for size in 1..=longest_server_step(&script) {
            run(name, &script, Feed::Chunks(size));
        }
    }
}
