//! Choosing taps: by kind, by module path, alias, glob pattern, conv ordinal or any
//! float tensor of the graph. An empty or unknown selection is an error that lists the
//! closest names.

use super::{Model, TapKind, TapPoint};
use crate::error::{Error, Result};

/// Whether `key` is a glob pattern (`blocks.*.mlp.fc1`, `layer?.0.conv[12]`).
fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

impl Model {
    /// The preprocessing to apply, when the model records it or the user set it
    /// ([`Model::preprocess_known`]); else an error saying what to pass. Flickertag never
    /// assumes a normalization: a wrong one gives plausible numbers.
    pub fn input_preprocess(&self) -> Result<&super::Preprocess> {
        if self.preprocess_known {
            return Ok(&self.preprocess);
        }
        Err(Error::param(
            "mean",
            format!(
                "the input normalization of {}: it records none (ONNX metadata flickertag.mean/flickertag.std). \
                 Pass <mean> and <std> in [0, 1] pixel units, as torchvision's Normalize: ImageNet models \
                 <mean 0.485,0.456,0.406> <std 0.229,0.224,0.225>; a model fed raw 0-255 pixels <mean 0> \
                 <std 0.00392156862745098>; a model fed [0, 1] pixels <mean 0> <std 1>",
                self.name
            ),
            "nothing",
        ))
    }

    /// Sets the preprocessing (user flags): `mean`/`std` lists of 1 or 3 values in
    /// [0, 1] pixel units, and optional resize/centre-crop. Values not given keep what
    /// the model records.
    pub fn set_preprocess(
        &mut self,
        mean: Option<&[f32]>,
        std: Option<&[f32]>,
        resize: Option<usize>,
        crop: Option<usize>,
    ) -> Result<()> {
        match (mean, std) {
            (Some(m), Some(s)) => {
                self.preprocess.mean = super::Preprocess::triple("mean", m)?;
                self.preprocess.std = super::Preprocess::triple("std", s)?;
                self.preprocess_known = true;
            }
            (None, None) => {}
            (Some(_), None) => return Err(Error::param("std", "<std> together with <mean>", "nothing")),
            (None, Some(_)) => return Err(Error::param("mean", "<mean> together with <std>", "nothing")),
        }
        for (what, v) in [("resize", resize), ("crop", crop)] {
            if let Some(v) = v {
                if !(1..=crate::io::data::MAX_IMAGE_SIDE).contains(&v) {
                    return Err(Error::param(what, format!("a side in 1..={}", crate::io::data::MAX_IMAGE_SIDE), v));
                }
            }
        }
        if resize.is_some() {
            self.preprocess.resize = resize;
        }
        if crop.is_some() {
            self.preprocess.crop = crop;
        }
        Ok(())
    }

    /// `img` fitted to the model's input per the preprocessing (resize, crop); an error
    /// naming `--resize`/`--crop` when its size still differs from the input's.
    pub fn fit_image(&self, img: crate::io::data::Image, what: &str) -> Result<crate::io::data::Image> {
        let img = self.preprocess.fit(img)?;
        let [_, h, w] = self.input_shape;
        if (img.height, img.width) != (h, w) {
            return Err(Error::Data {
                path: what.into(),
                reason: format!(
                    "image is {}x{} (height x width) after preprocessing ({}), the model takes {h}x{w}: pass \
                     <resize {}> (and <crop {}> for a non-square image)",
                    img.height,
                    img.width,
                    self.preprocess.describe(),
                    h.min(w),
                    h.min(w)
                ),
            });
        }
        Ok(img)
    }

    /// The taps of `key`:
    /// - a module path or functional name (`layer2.3.conv1`, `blocks.0.mlp.fc1`,
    ///   `layer1.0.add`), or an alias (an enclosing module with the same output, the
    ///   ONNX tensor name);
    /// - `#<n>`: the n-th conv tap (1-based, graph order, as the paper counts);
    /// - a glob pattern over tap names (`blocks.*.mlp.fc1`, `layer1.*`);
    /// - any image-dependent float tensor of the graph with a known layout, recorded as
    ///   kind `other`.
    pub fn find_taps(&self, key: &str) -> Result<Vec<TapPoint>> {
        if let Some(n) = key.strip_prefix('#') {
            let o: usize = n.parse().map_err(|_| Error::param("tap", "#<conv ordinal>, e.g. #4", key))?;
            let convs = self.taps.iter().filter(|t| t.conv_ordinal.is_some()).count();
            return self
                .taps
                .iter()
                .find(|t| t.conv_ordinal == Some(o))
                .cloned()
                .map(|t| vec![t])
                .ok_or_else(|| Error::param("tap", format!("a conv ordinal of {} in 1..={convs}", self.name), key));
        }
        if is_glob(key) {
            let pat = glob::Pattern::new(key).map_err(|e| Error::param("tap", format!("a glob pattern ({e})"), key))?;
            let v: Vec<TapPoint> = self.taps.iter().filter(|t| pat.matches(&t.name)).cloned().collect();
            if v.is_empty() {
                return Err(self.unknown(key, "a pattern matching at least one tap name"));
            }
            return Ok(v);
        }
        if let Some(t) = self.taps.iter().find(|t| t.name == key) {
            return Ok(vec![t.clone()]);
        }
        // An alias of several taps (a module called several times) is not resolved by
        // picking one: the error lists them.
        let by_alias: Vec<&TapPoint> =
            self.taps.iter().filter(|t| t.aliases.iter().any(|a| a == key) || t.tensor == key).collect();
        match by_alias.as_slice() {
            [t] => return Ok(vec![(*t).clone()]),
            [] => {}
            many => {
                let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
                return Err(Error::param(
                    "tap",
                    format!("one tap ({key} names {} taps: {}; name one of them)", names.len(), names.join(", ")),
                    key,
                ));
            }
        }
        if let Some(s) = self.skipped.iter().find(|s| s.name == key) {
            return Err(Error::param("tap", format!("a tap ({key} is not one: {})", s.reason), key));
        }
        if let Some((layout, dims)) = self.tensors.get(key) {
            let chw = layout
                .canonical(dims)
                .ok_or_else(|| Error::param("tap", format!("a tensor whose layout fits its shape ({dims:?})"), key))?;
            return Ok(vec![TapPoint {
                name: key.to_string(),
                tensor: key.to_string(),
                kind: TapKind::Other,
                conv_ordinal: None,
                layout: *layout,
                dims: dims.clone(),
                chw,
                aliases: vec![],
                folded: None,
            }]);
        }
        let g = self.proto.graph.as_ref().expect("checked at load");
        if g.node.iter().any(|n| n.output.iter().any(|o| o == key)) {
            return Err(Error::param(
                "tap",
                "a tensor whose channel axis flickertag can determine from the graph (this one is not image-dependent \
                 float, or its layout is lost in reshapes): tap the module that produces it",
                key,
            ));
        }
        Err(self.unknown(key, "a tap name, alias, glob pattern, #<conv ordinal> or float tensor name"))
    }

    /// The first tap of [`Model::find_taps`].
    pub fn tap(&self, key: &str) -> Result<TapPoint> {
        Ok(self.find_taps(key)?.remove(0))
    }

    /// The taps of `names` in the order given (each per [`Model::find_taps`], without
    /// repeats) when any are given, else the taps of `kinds` in graph order. An empty
    /// selection is an error.
    pub fn select_taps(&self, kinds: &[TapKind], names: &[String]) -> Result<Vec<TapPoint>> {
        let mut out: Vec<TapPoint> = Vec::new();
        if names.is_empty() {
            out = self.taps.iter().filter(|t| kinds.contains(&t.kind)).cloned().collect();
            if out.is_empty() && !kinds.is_empty() {
                let present: std::collections::BTreeSet<&str> = self.taps.iter().map(|t| t.kind.name()).collect();
                let ks: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(Error::param(
                    "taps",
                    format!(
                        "kinds {} has: {} (see `flickertag taps`)",
                        self.name,
                        present.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    ks.join(","),
                ));
            }
            return Ok(out);
        }
        for n in names {
            for t in self.find_taps(n)? {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    fn unknown(&self, key: &str, expected: &str) -> Error {
        let mut near: Vec<(f64, &str)> =
            self.taps.iter().map(|t| (strsim::normalized_levenshtein(&t.name, key), t.name.as_str())).collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        let close: Vec<&str> = near.iter().take(5).map(|x| x.1).collect();
        Error::param(
            "tap",
            format!("{expected} of {}; closest: {} (all: `flickertag taps`)", self.name, close.join(", ")),
            key,
        )
    }
}
