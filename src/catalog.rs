//! The providers the gateway knows, declared once.
//!
//! [`for_each_provider!`](crate::for_each_provider) is the one list. Everything that has one
//! item per provider is generated from it: the [`ProviderId`] enum and its names (here; also the
//! metrics labels and the keys of `targets` and of the 207 `results`), the adapters' modules and
//! their registry, the `targets` schema and the `providers.<name>` configuration sections
//! (`crate::providers`), and the simulated providers (`crate::sandbox`).
//!
//! Adding a provider: one line below, its adapter `src/providers/<name>.rs` and its simulation
//! `src/sandbox/<name>.rs` (`docs/building/adding-a-provider.md` has the whole recipe).

/// Calls `$callback! { (Variant, module, "Display name"), ... }` with every provider, in the
/// order results are listed. `Variant` names the [`ProviderId`] and the adapter type
/// (`providers::module::Variant`); `module` is the name on the wire (`targets.module`,
/// `providers.module`) and the file of the adapter and of its simulation.
#[macro_export]
macro_rules! for_each_provider {
    ($callback:ident) => {
        $callback! {
            (Lucca, lucca, "Lucca Project"),
            (Clockify, clockify, "Clockify"),
            (Plusvibe, plusvibe, "PlusVibe"),
            (Chatdash, chatdash, "ChatDash"),
            (Missionx, missionx, "missionX"),
        }
    };
}

macro_rules! provider_id {
    ($(($variant:ident, $module:ident, $display:literal)),* $(,)?) => {
        /// A provider, named on the wire by its lower-case module name (`lucca`, ...).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ProviderId {
            $(#[doc = $display] $variant,)*
        }

        impl ProviderId {
            /// Every provider, in the order results are listed.
            pub const ALL: &'static [ProviderId] = &[$(ProviderId::$variant),*];

            /// The name on the wire: `targets.<name>`, `providers.<name>`, metrics labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => stringify!($module),)*
                }
            }

            /// The product's own name, for messages.
            pub fn display_name(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => $display,)*
                }
            }
        }
    };
}

crate::for_each_provider!(provider_id);

impl ProviderId {
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == name)
    }

    /// The known names, comma-separated (for messages).
    pub fn known() -> String {
        Self::ALL
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ProviderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ProviderId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown provider `{name}`; known: {}",
                Self::known()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in ProviderId::ALL {
            assert_eq!(ProviderId::parse(p.as_str()), Some(*p));
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<ProviderId>(&json).unwrap(), *p);
        }
        assert_eq!(ProviderId::parse("asana"), None);
        assert!(serde_json::from_str::<ProviderId>("\"asana\"").is_err());
    }
}
