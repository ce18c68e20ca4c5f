//! Shards: `shard = "i/n"` in config.toml makes this instance handle only the shops whose name
//! hashes into shard `i` of `n` (0 ≤ i < n), so n instances over one `shops.d` share the work.
//!
//! Invariants: the hash is FNV-1a (64-bit) of the shop name's UTF-8 bytes, fixed forever (never
//! std's randomly keyed hasher), so a shop's shard depends on its name and `n` alone: adding or
//! removing shops never moves another shop, and every instance agrees without talking. For one
//! `n`, the shards `0/n … (n-1)/n` together hold every shop exactly once.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses "i/n"; the error says what is wrong, for a [`super::ConfigError`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not \"i/n\""))?;
        let number = |s: &str| s.trim().parse::<u64>().ok();
        let (Some(index), Some(count)) = (number(i), number(n)) else {
            return Err(format!("{text:?} is not \"i/n\" with whole numbers"));
        };
        if count == 0 || index >= count {
            return Err(format!(
                "{text:?}: i must be at least 0 and below n (shards are numbered 0 to n-1)"
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether this instance handles shop `name`.
    pub fn owns(&self, name: &str) -> bool {
        fnv1a(name.as_bytes()) % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bit (offset basis and prime from the FNV specification).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_as_published() {
        // Test vectors from the FNV reference: a shop's shard must never change between releases.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse("0/1").unwrap().to_string(), "0/1");
        for bad in ["3/3", "1/0", "a/3", "1", "-1/3", "1/3/4", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    const TRIPLETEX: &str = "[tripletex]\nbase_url = \"https://tripletex.no/v2\"\nconsumer_token_file = \"token\"\nsession_valid_days = 7\nrenew_before = \"1d\"\nrequest_timeout = \"30s\"\n";

    /// Three instances with their own config.toml over one shops.d.
    #[test]
    fn instances_over_one_shops_d_split_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let shops_d = dir.path().join("shops.d");
        std::fs::create_dir(&shops_d).unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let names: Vec<String> = (0..40).map(|i| format!("shop{i}")).collect();
        for name in &names {
            std::fs::write(
                shops_d.join(format!("{name}.toml")),
                "employee_token_file = \"../token\"\n",
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        for i in 0..3 {
            let path = dir.path().join(format!("config-{i}.toml"));
            std::fs::write(
                &path,
                format!("shard = \"{i}/3\"\nstate_dir = \"state-{i}\"\n{TRIPLETEX}"),
            )
            .unwrap();
            let config = crate::config::Config::load(&path).unwrap();
            assert_eq!(config.shard.unwrap().to_string(), format!("{i}/3"));
            assert!(!config.shops.is_empty() && config.shops.len() < names.len());
            seen.extend(config.shops.into_iter().map(|s| s.name.clone()));
        }
        seen.sort();
        let mut all = names.clone();
        all.sort();
        assert_eq!(seen, all, "every shop exactly once");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, format!("shard = \"3/3\"\n{TRIPLETEX}")).unwrap();
        let e = crate::config::Config::load(&bad).unwrap_err().to_string();
        assert!(e.contains("`shard`") && e.contains("fix:"), "{e}");
    }

    #[test]
    fn n_shards_cover_every_shop_exactly_once() {
        let names: Vec<String> = (0..600).map(|i| format!("shop-{i}")).collect();
        for n in 1..=7 {
            let shards: Vec<Shard> = (0..n).map(|i| Shard { index: i, count: n }).collect();
            for name in &names {
                let owners = shards.iter().filter(|s| s.owns(name)).count();
                assert_eq!(owners, 1, "{name} in {n} shards");
            }
            // Roughly even: no shard holds more than twice its share.
            for s in &shards {
                let held = names.iter().filter(|name| s.owns(name)).count() as u64;
                assert!(held * n <= 2 * names.len() as u64, "{s}: {held}");
            }
        }
    }
}
