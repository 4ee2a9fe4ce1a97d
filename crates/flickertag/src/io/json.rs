//! How flickertag's JSON files hold numbers that JSON cannot: a NaN (a filter with no
//! finite score, an undefined p-value) is written as `null` by serde_json and read back
//! as NaN by these helpers. A missing key is an error, never a default. Also: a run's
//! options read from JSON ([`options`]), as the Python package passes them.

use serde::{Deserialize, Deserializer};

/// Reads an `f64` that may be `null` (NaN); the key itself is required.
pub fn nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a list of `f64` whose entries may be `null` (NaN).
pub fn nan_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// (De)serializes a value through its `Display` and `FromStr` (`"grid:2x3"` for a
/// layout), so that options files and Python keyword arguments use the CLI's spelling.
pub mod via_str {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `v.to_string()`.
    pub fn serialize<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads a string and parses it; the parse error (naming the parameter) is the message.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Reads a run's options from a JSON object, as the Python package passes them:
/// unknown names are an error listing the known ones (the options deny unknown fields).
pub fn options<T: serde::de::DeserializeOwned>(json: &str) -> crate::error::Result<T> {
    serde_json::from_str(json).map_err(|e| crate::error::Error::Param {
        name: "options",
        reason: e.to_string(),
        given: json.chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::nan")]
        x: f64,
        #[serde(deserialize_with = "super::nan_vec")]
        v: Vec<f64>,
        #[serde(deserialize_with = "Option::deserialize")]
        o: Option<u32>,
    }

    #[test]
    fn null_reads_as_nan_and_missing_keys_are_errors() {
        let t: T = serde_json::from_str(r#"{"x": null, "v": [1.5, null], "o": null}"#).unwrap();
        assert!(t.x.is_nan() && t.v[0] == 1.5 && t.v[1].is_nan() && t.o.is_none());
        for missing in [r#"{"v": [], "o": 1}"#, r#"{"x": 1, "o": 1}"#, r#"{"x": 1, "v": []}"#] {
            let e = serde_json::from_str::<T>(missing).unwrap_err().to_string();
            assert!(e.contains("missing field"), "{missing}: {e}");
        }
    }
}
