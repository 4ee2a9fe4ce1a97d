//! What a tagged tensor is: a plain layout again, an arrangement read through a
//! table, or nothing flickertag can read (see the parent module).

use std::rc::Rc;

use super::tags::{each_index, frame_of, grid_of, p_of, pos_tag, strides, Tags, NONE, PAD};

/// How a tagged tensor is read as a tap (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arrangement {
    /// The axis of the full tensor (batch axis 0) that holds the channels.
    pub channel_axis: usize,
    /// The grid, rows x columns.
    pub grid: [usize; 2],
    /// For each grid position (row-major), its row within the frame's block once the
    /// channel axis is moved last (`[N, rows, C]`).
    pub table: Vec<i64>,
}

/// What [`classify`] finds a tagged tensor to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    /// A plain layout: channels first `[N, C, H, W]` (`grid`), channels last
    /// `[N, H, W, C]`, patch tokens `[N, T, D]` on `grid`, `[N, C, T]` of a grid, `[N, C]`.
    ChannelsFirst,
    /// `[N, H, W, C]`.
    ChannelsLast,
    /// `[N, T, D]`, T = rows x columns of the grid.
    Tokens([usize; 2]),
    /// `[N, C, T]`, T = rows x columns of the grid.
    Seq([usize; 2]),
    /// `[N, C]`.
    Flat,
    /// Anything else that reads unambiguously.
    Arranged(Arrangement),
}

/// What a tagged tensor is (see the module doc); `None` when the tags do not say.
/// Positions on a regular sub-lattice of the grid (a strided subsampling, a crop)
/// are read on a grid of their own; the tags keep the grid they came from, so that
/// the parts of a cyclic shift still fit together.
pub(super) fn classify(t: &Tags, n: usize, grids: &[[usize; 2]]) -> Option<Found> {
    classify_on(t, n, grids, true)
}

fn classify_on(t: &Tags, n: usize, grids: &[[usize; 2]], may_coarsen: bool) -> Option<Found> {
    let shape = &t.shape;
    let r = shape.len();
    if r < 2 || !shape[0].is_multiple_of(n) || shape[0] < n {
        return None;
    }
    let total = t.pos.len();
    let block = total / n;
    // Every element belongs to one frame, block-wise, on one grid.
    let mut gid = None;
    for (i, (&p, &c)) in t.pos.iter().zip(t.chan.iter()).enumerate() {
        if p == PAD {
            continue;
        }
        if p == NONE || c == NONE || c == PAD || frame_of(p) != i / block {
            return None;
        }
        match gid {
            None => gid = Some(grid_of(p)),
            Some(g0) if g0 != grid_of(p) => return None,
            _ => {}
        }
    }
    let gid = gid?;
    // The channel axis: the one axis along which the channel varies (and the
    // position does not); along every other axis the channel stays.
    let axes: Vec<usize> = (1..r).filter(|&a| shape[a] > 1).collect();
    let varying: Vec<usize> = axes.iter().copied().filter(|&a| !t.constant_along(a, false)).collect();
    let ca = match varying.as_slice() {
        [a] if t.constant_along(*a, true) => *a,
        // Patch merging (space to depth, Swin's downsampling): the channels of one row
        // come from a block of the grid; read on the grid of blocks.
        [a] if may_coarsen => {
            return coarsened(t, *a, gid, grids).and_then(|(c, g)| classify_on(&c, n, &g, false));
        }
        _ => return None,
    };
    let c = shape[ca];
    // Rows: each position's channels, in order once the channel axis is last; a row's
    // position is that of its first channel a Pad did not add (channels padded with
    // zeros, as ResNet's option-A shortcut does, are channels like the others).
    let st = strides(shape);
    let mut rest: Vec<usize> = shape.clone();
    rest.remove(ca);
    let rows_per_frame = block / c;
    let mut frame_rows: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    each_index(&rest, |row, idx| {
        let flat: usize = idx.iter().enumerate().map(|(k, &i)| i * st[if k < ca { k } else { k + 1 }]).sum();
        if let Some(p) = (0..c).map(|j| t.pos[flat + j * st[ca]]).find(|&p| p != PAD) {
            frame_rows[row / rows_per_frame].push((row % rows_per_frame, p));
        }
    });
    let [_, gw] = grids[gid];
    // The positions of frame 0; every frame alike.
    let mut ys: Vec<usize> = frame_rows[0].iter().map(|(_, p)| p_of(*p) / gw).collect();
    let mut xs: Vec<usize> = frame_rows[0].iter().map(|(_, p)| p_of(*p) % gw).collect();
    ys.sort_unstable();
    ys.dedup();
    xs.sort_unstable();
    xs.dedup();
    let lattice = |v: &[usize]| v.len() < 2 || v.windows(2).all(|w| w[1] - w[0] == v[1] - v[0]);
    if !lattice(&ys) || !lattice(&xs) || ys.len() * xs.len() != frame_rows[0].len() {
        return None;
    }
    let (h, w) = (ys.len(), xs.len());
    let sub = |p: usize| -> Option<usize> {
        let (y, x) = (p / gw, p % gw);
        Some(ys.binary_search(&y).ok()? * w + xs.binary_search(&x).ok()?)
    };
    let mut table = vec![-1i64; h * w];
    for (f, rows) in frame_rows.iter().enumerate() {
        let mut seen = vec![-1i64; h * w];
        for &(row, p) in rows {
            let q = sub(p_of(p))?;
            if seen[q] >= 0 {
                return None; // a position twice
            }
            seen[q] = row as i64;
        }
        if seen.contains(&-1) || (f > 0 && seen != table) {
            return None;
        }
        table = seen;
    }
    // A plain layout: no row is all padding, and the rows are the grid in order.
    let identity = shape[0] == n
        && frame_rows.iter().all(|r| r.len() == rows_per_frame)
        && table.iter().enumerate().all(|(i, &v)| v == i as i64);
    let found = match (r, ca) {
        (4, 1) if identity && [shape[2], shape[3]] == [h, w] => Found::ChannelsFirst,
        (4, 3) if identity && [shape[1], shape[2]] == [h, w] => Found::ChannelsLast,
        (3, 2) if identity && shape[1] == h * w => Found::Tokens([h, w]),
        (3, 1) if identity && shape[2] == h * w => Found::Seq([h, w]),
        (2, 1) if identity && h * w == 1 => Found::Flat,
        _ => Found::Arranged(Arrangement { channel_axis: ca, grid: [h, w], table }),
    };
    Some(found)
}

/// `t` with its positions on the grid of blocks that the channel axis `ca` spans (a
/// space-to-depth: the `by x bx` block of the first row's channels), and the grids
/// with that coarse grid added; `None` unless the blocks tile the grid.
fn coarsened(t: &Tags, ca: usize, gid: usize, grids: &[[usize; 2]]) -> Option<(Tags, Vec<[usize; 2]>)> {
    let [gh, gw] = grids[gid];
    let st = strides(&t.shape)[ca];
    let first: Vec<usize> = (0..t.shape[ca]).map(|i| t.pos[i * st]).filter(|p| *p != PAD).map(p_of).collect();
    let (y0, y1) = (first.iter().map(|p| p / gw).min()?, first.iter().map(|p| p / gw).max()?);
    let (x0, x1) = (first.iter().map(|p| p % gw).min()?, first.iter().map(|p| p % gw).max()?);
    let (by, bx) = (y1 - y0 + 1, x1 - x0 + 1);
    if by * bx < 2 || gh % by != 0 || gw % bx != 0 {
        return None;
    }
    let mut g = grids.to_vec();
    let coarse = [gh / by, gw / bx];
    let cid = g.iter().position(|x| *x == coarse).unwrap_or_else(|| {
        g.push(coarse);
        g.len() - 1
    });
    let pos: Vec<u64> = t
        .pos
        .iter()
        .map(|&p| match p {
            PAD | NONE => p,
            _ => pos_tag(frame_of(p), cid, (p_of(p) / gw / by) * coarse[1] + (p_of(p) % gw) / bx),
        })
        .collect();
    Some((Tags { shape: t.shape.clone(), pos: Rc::new(pos), chan: t.chan.clone() }, g))
}
