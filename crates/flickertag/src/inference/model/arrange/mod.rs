//! Arrangements: where each element of a tensor lies on the image grid, found by
//! replaying the graph's data movement on tags instead of values.
//!
//! The rules of `layout.rs` know a tensor's channels from the op that made it. Some
//! networks move activations around before and after computing on them: windowed
//! attention (Swin: a cyclic shift by Slice + Concat, then `[N, H, W, C]` cut into
//! `[N·windows, w·w, C]` and put back after the attention), unfolded patches (MobileViT:
//! `[N, C, H, W]` to `[N·P, patches, C]` and back), channel shuffles (ShuffleNet:
//! `[N, g, C/g, H, W]` transposed) and strided subsampling (LeViT's shrinking grid).
//! The batch axis is often merged with windows there, so such a tensor is not even
//! batch-first. For these, flickertag replays the movement itself: every element of a
//! tensor whose layout is known is tagged with the frame and the grid position it
//! belongs to and with its channel, and the tags go through Reshape, Transpose, Slice,
//! Concat, Split, Gather and Pad exactly as the values do (with the probe's shapes, at
//! the probe's batch). Computing ops keep tags where their meaning is plain: pointwise
//! ops, normalizations over the channel axis, a Linear (new channels, same positions),
//! and attention's products (an output row sits at its query's position, the convention
//! of every token model; its channels are the value's).
//!
//! A tagged tensor is a tap when its tags say unambiguously how to read it: the
//! elements of frame `f` are the `f`-th block of the batch axis, exactly one axis holds
//! the channels (tags vary along it in channel and along no other), and every grid
//! position appears exactly once per channel and frame (positions a Pad added are
//! allowed: they are in the mean, as a hook sees them, and not in maps). Its mean per
//! channel is taken over the frame's block; its maps gather each grid position's row.
//! A tagged tensor that is a plain layout again (the windows put back) continues as
//! that layout. Anything else (attention scores, heads, partial grids) has no
//! arrangement, and is no tap: flickertag does not guess.
//!
//! Hand-written: no crate replays ONNX data-movement ops on index arrays; the ops are
//! few and their ONNX semantics are stated where each is replayed.

mod classify;
mod replay;
mod tags;

pub(crate) use classify::{Arrangement, Found};
pub(crate) use replay::{is_movement, Arranger};

#[cfg(test)]
mod tests {
    use super::super::graph::{self, attr_int, attr_ints, node};
    use super::super::layout::{propagate, Layout, Shapes};
    use onnx_protobuf::GraphProto;

    /// Full shapes at batch 2 and per-frame shapes of the batch-first ones.
    fn shapes(full: &[(&str, &[usize])]) -> (Shapes, Shapes) {
        let f: Shapes = full.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        let per = f.iter().filter(|(_, v)| v[0] == 2).map(|(k, v)| (k.clone(), v[1..].to_vec())).collect();
        (per, f)
    }

    /// A Swin block's data movement on a 4x4 grid of 4 channels: a cyclic shift by one
    /// row (Slice + Concat), 2x2 windows `[N·4, 4, C]`, a Linear on the windows, the
    /// windows put back and the shift undone.
    fn swin_like() -> (GraphProto, Shapes, Shapes) {
        let mut g = GraphProto {
            initializer: vec![
                graph::tensor_f32("w", &[4, 3, 2, 2], &[0.5; 48]),
                graph::tensor_f32("lin", &[4, 6], &[0.5; 24]),
                graph::tensor_i64("s0", &[-1]),
                graph::tensor_i64("e0", &[i64::MAX]),
                graph::tensor_i64("s1", &[0]),
                graph::tensor_i64("e1", &[-1]),
                graph::tensor_i64("s2", &[1]),
                graph::tensor_i64("e2", &[1]),
                graph::tensor_i64("ax1", &[1]),
                graph::tensor_i64("part", &[2, 2, 2, 2, 2, 4]),
                graph::tensor_i64("win", &[8, 4, 4]),
                graph::tensor_i64("part6", &[2, 2, 2, 2, 2, 6]),
                graph::tensor_i64("back", &[2, 4, 4, 6]),
            ],
            ..Default::default()
        };
        let perm = |p: &[i64]| vec![attr_ints("perm", p)];
        g.node = vec![
            node("Conv", "conv", &["image", "w"], &["c"], vec![attr_ints("strides", &[2, 2])]),
            node("Transpose", "t", &["c"], &["cl"], perm(&[0, 2, 3, 1])),
            // roll by +1 along H: the last row, then the others
            node("Slice", "a", &["cl", "s0", "e0", "ax1"], &["ra"], vec![]),
            node("Slice", "b", &["cl", "s1", "e1", "ax1"], &["rb"], vec![]),
            node("Concat", "roll", &["ra", "rb"], &["rolled"], vec![attr_int("axis", 1)]),
            node("Reshape", "p1", &["rolled", "part"], &["p1"], vec![]),
            node("Transpose", "p2", &["p1"], &["p2"], perm(&[0, 1, 3, 2, 4, 5])),
            node("Reshape", "p3", &["p2", "win"], &["windows"], vec![]),
            node("MatMul", "qkv", &["windows", "lin"], &["qkv"], vec![]),
            // an attention-score-like product of the windows with themselves
            node("Transpose", "kt", &["qkv"], &["kt"], perm(&[0, 2, 1])),
            node("MatMul", "scores", &["qkv", "kt"], &["scores"], vec![]),
            node("Reshape", "r1", &["qkv", "part6"], &["r1"], vec![]),
            node("Transpose", "r2", &["r1"], &["r2"], perm(&[0, 1, 3, 2, 4, 5])),
            node("Reshape", "r3", &["r2", "back"], &["r3"], vec![]),
            // roll back by -1: rows 1.., then row 0
            node("Slice", "c", &["r3", "s2", "e0", "ax1"], &["rc"], vec![]),
            node("Slice", "d", &["r3", "s1", "e2", "ax1"], &["rd"], vec![]),
            node("Concat", "unroll", &["rc", "rd"], &["out"], vec![attr_int("axis", 1)]),
        ];
        let (per, full) = shapes(&[
            ("image", &[2, 3, 8, 8]),
            ("c", &[2, 4, 4, 4]),
            ("cl", &[2, 4, 4, 4]),
            ("ra", &[2, 1, 4, 4]),
            ("rb", &[2, 3, 4, 4]),
            ("rolled", &[2, 4, 4, 4]),
            ("p1", &[2, 2, 2, 2, 2, 4]),
            ("p2", &[2, 2, 2, 2, 2, 4]),
            ("windows", &[8, 4, 4]),
            ("qkv", &[8, 4, 6]),
            ("kt", &[8, 6, 4]),
            ("scores", &[8, 4, 4]),
            ("r1", &[2, 2, 2, 2, 2, 6]),
            ("r2", &[2, 2, 2, 2, 2, 6]),
            ("r3", &[2, 4, 4, 6]),
            ("rc", &[2, 3, 4, 6]),
            ("rd", &[2, 1, 4, 6]),
            ("out", &[2, 4, 4, 6]),
        ]);
        (g, per, full)
    }

    #[test]
    fn shifted_windows_are_arranged_on_the_grid_and_put_back_as_channels_last() {
        let (g, per, full) = swin_like();
        let p = propagate(&g, "image", false, &per, &full, 2);
        assert_eq!(p.layouts.get("cl"), Some(&Layout::ChannelsLast));
        assert_eq!(p.layouts.get("out"), Some(&Layout::ChannelsLast), "the shift undone is plain again");
        let a = p.arranged.get("qkv").expect("the windows' Linear is arranged");
        assert_eq!((a.channel_axis, a.grid), (2, [4, 4]));
        // Known answer: grid position (y, x) of the unshifted map sits at row y+1 (mod
        // 4) of the shifted one, in window (row / 2, x / 2), at (row % 2, x % 2) in it.
        for y in 0..4 {
            for x in 0..4 {
                let r = (y + 1) % 4;
                let window = (r / 2) * 2 + x / 2;
                let row = window * 4 + (r % 2) * 2 + x % 2;
                assert_eq!(a.table[y * 4 + x], row as i64, "({y}, {x})");
            }
        }
        assert!(p.arranged.contains_key("windows"));
        assert!(p.arranged.get("rolled").is_some_and(|a| a.channel_axis == 3), "the shifted map itself");
        assert!(!p.arranged.contains_key("scores") && !p.layouts.contains_key("scores"), "scores: no channels");
    }

    #[test]
    fn a_channel_shuffle_keeps_channels_first() {
        let g = GraphProto {
            initializer: vec![
                graph::tensor_f32("w", &[4, 3, 2, 2], &[0.5; 48]),
                graph::tensor_i64("split", &[2, 2, 2, 4, 4]),
                graph::tensor_i64("merged", &[2, 4, 4, 4]),
            ],
            node: vec![
                node("Conv", "conv", &["image", "w"], &["c"], vec![attr_ints("strides", &[2, 2])]),
                node("Reshape", "a", &["c", "split"], &["a"], vec![]),
                node("Transpose", "b", &["a"], &["b"], vec![attr_ints("perm", &[0, 2, 1, 3, 4])]),
                node("Reshape", "shuffled", &["b", "merged"], &["shuffled"], vec![]),
            ],
            ..Default::default()
        };
        let (per, full) = shapes(&[
            ("image", &[2, 3, 8, 8]),
            ("c", &[2, 4, 4, 4]),
            ("a", &[2, 2, 2, 4, 4]),
            ("b", &[2, 2, 2, 4, 4]),
            ("shuffled", &[2, 4, 4, 4]),
        ]);
        let p = propagate(&g, "image", false, &per, &full, 2);
        assert_eq!(p.layouts.get("shuffled"), Some(&Layout::ChannelsFirst));
        assert_eq!(p.layouts.get("a"), None, "channels split over two axes: no layout");
    }

    #[test]
    fn regression_option_a_shortcut_with_padded_channels_stays_channels_first() {
        // ResNet's option-A shortcut: every second row and column (a strided Slice),
        // then zero channels on both sides (a Pad of the channel axis). Read as
        // "arranged" it lost its channels-first layout (pruning and CAM need that).
        let g = GraphProto {
            initializer: vec![
                graph::tensor_f32("w", &[4, 3, 1, 1], &[0.5; 12]),
                graph::tensor_i64("starts", &[0, 0]),
                graph::tensor_i64("ends", &[i64::MAX, i64::MAX]),
                graph::tensor_i64("axes", &[2, 3]),
                graph::tensor_i64("steps", &[2, 2]),
                graph::tensor_i64("pads", &[0, 2, 0, 0, 0, 2, 0, 0]),
            ],
            node: vec![
                node("Conv", "conv", &["image", "w"], &["c"], vec![]),
                node("Slice", "sub", &["c", "starts", "ends", "axes", "steps"], &["sub"], vec![]),
                node("Pad", "pad", &["sub", "pads"], &["padded"], vec![]),
            ],
            ..Default::default()
        };
        let (per, full) = shapes(&[
            ("image", &[2, 3, 8, 8]),
            ("c", &[2, 4, 8, 8]),
            ("sub", &[2, 4, 4, 4]),
            ("padded", &[2, 8, 4, 4]),
        ]);
        let p = propagate(&g, "image", false, &per, &full, 2);
        assert_eq!(p.layouts.get("sub"), Some(&Layout::ChannelsFirst));
        assert_eq!(p.layouts.get("padded"), Some(&Layout::ChannelsFirst));
        assert!(p.arranged.is_empty(), "{:?}", p.arranged.keys().collect::<Vec<_>>());
    }
}
