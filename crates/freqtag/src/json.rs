//! How freqtag's JSON files hold numbers that JSON cannot: a NaN (a filter with no
//! finite score, an undefined p-value) is written as `null` by serde_json and read back
//! as NaN by these helpers. A missing key is an error, never a default.

use serde::{Deserialize, Deserializer};

/// Reads an `f64` that may be `null` (NaN); the key itself is required.
pub fn nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a list of `f64` whose entries may be `null` (NaN).
pub fn nan_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
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
