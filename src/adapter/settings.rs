//! `providers.<name>`: the keys every provider has ([`Common`]), and [`provider_settings!`]
//! which declares one provider's section from its own keys and secrets.

use std::fmt::Debug;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use crate::secret::SecretFileError;

/// Calls `$callback! { [keys] $($rest)* }` with the keys every provider has: each with its doc,
/// its name and its type. The one list of them: [`Common`] and every provider's section
/// ([`provider_settings!`]) are made from it; the defaults are [`Common::with_base_url`]'s.
macro_rules! with_common_keys {
    ($($callback:ident)::+ ! { $($rest:tt)* }) => {
        $($callback)::+! {
            [
                /// `false` makes selecting this provider a 422.
                enabled: bool,
                /// The prefix before the documented path (http or https, no credentials).
                #[schema(value_type = String)]
                base_url: url::Url,
                /// Per-target timeout, inside `server.deadline_ms`.
                #[schema(minimum = 1, maximum = 600000)]
                timeout_ms: u64,
                /// HTTP requests at most per target, retries included (retries only where the
                /// provider cannot have acted).
                #[schema(minimum = 1, maximum = 20)]
                max_attempts: u32,
                /// The first retry's pause (then doubled, with jitter).
                #[schema(minimum = 0, maximum = 600000)]
                retry_base_delay_ms: u64,
                /// The longest pause between retries.
                #[schema(minimum = 0, maximum = 600000)]
                retry_max_delay_ms: u64,
                /// Outbound requests per minute at most (for the fleet when the replicas share
                /// Redis); absent: no limit.
                #[schema(minimum = 1, maximum = 1000000)]
                max_per_minute: Option<u32>,
                /// Connections to this provider at most (per replica): over HTTP/1.1 one per call
                /// in flight, over HTTP/2 each carries `http2_max_streams` calls. More calls wait
                /// for a slot, inside their timeout, before anything is sent.
                #[schema(minimum = 1, maximum = 100000)]
                max_connections: usize,
                /// Consecutive `unavailable`/`timeout` results that open the circuit.
                #[schema(minimum = 1, maximum = 1000)]
                circuit_failure_threshold: u32,
                /// How long an open circuit refuses calls before one probe.
                #[schema(minimum = 0, maximum = 86400000)]
                circuit_cooldown_ms: u64,
                /// An unanswered create not found by a lookup is sent again (on a replay with
                /// its `Idempotency-Key`) only this long after it was first sent.
                #[schema(minimum = 0, maximum = 86400)]
                settle_s: u64,
                /// CA certificates (PEM) trusted for this provider only, besides `[tls]`'s.
                #[schema(value_type = Option<String>)]
                ca_file: Option<std::path::PathBuf>,
                /// Offer HTTP/2 (ALPN) over TLS; `false`: HTTP/1.1 only.
                http2: bool,
                /// Calls in flight at most on one HTTP/2 connection; past it, another is opened.
                #[schema(minimum = 1, maximum = 1000)]
                http2_max_streams: usize,
                /// An outbound connection idle this long is closed (before the provider's own
                /// keep-alive ends, so that no call goes on a connection it is closing).
                #[schema(minimum = 100, maximum = 600000)]
                idle_timeout_ms: u64,
            ]
            $($rest)*
        }
    };
}
pub(crate) use with_common_keys;

macro_rules! common_struct {
    ([ $( $(#[$cdoc:meta])* $ckey:ident : $cty:ty ),* $(,)? ]) => {
        /// `[providers.<name>]`: the keys every provider has, beside its own credentials and
        /// defaults.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
        pub struct Common {
            $( $(#[$cdoc])* pub $ckey: $cty, )*
        }
    };
}

with_common_keys!(common_struct! {});

impl Common {
    /// The defaults, with the provider's production base URL.
    pub fn with_base_url(base_url: &str) -> Self {
        Self {
            enabled: true,
            base_url: Url::parse(base_url).expect("a built-in base URL is valid"),
            timeout_ms: 5_000,
            max_attempts: 3,
            retry_base_delay_ms: 100,
            retry_max_delay_ms: 2_000,
            max_per_minute: None,
            max_connections: 64,
            circuit_failure_threshold: 5,
            circuit_cooldown_ms: 30_000,
            settle_s: 60,
            ca_file: None,
            http2: true,
            http2_max_streams: 100,
            idle_timeout_ms: 4_000,
        }
    }

    /// What is wrong with these values beyond their bounds (which their types declare and the
    /// configuration check enforces), if anything, named by the key alone.
    pub fn problem(&self) -> Option<String> {
        crate::net::url_problem("base_url", &self.base_url)
    }
}

/// One provider's configuration section, as [`provider_settings!`] declares it.
pub trait ProviderSettings:
    DeserializeOwned + serde::Serialize + utoipa::ToSchema + Default + Debug + Send + Sync + 'static
{
    fn common(&self) -> Common;
    fn set_common(&mut self, common: Common);
    /// Reads every `<secret>_file` into its `<secret>`; keys are named under `section`
    /// (`providers.lucca`).
    fn resolve_secret_files(&mut self, section: &str) -> Result<(), SecretFileError>;
    /// The secrets configured (credentials that must never be shown).
    fn secrets(&self) -> Vec<&SecretString>;
}

/// Declares one provider's settings struct: the [`Common`] keys (with their defaults and the
/// given production base URL), its secrets (each with its `_file` twin), and its own keys.
///
/// ```ignore
/// provider_settings! {
///     /// Clockify.
///     pub struct ClockifySettings("https://api.clockify.me/api") {
///         secrets { api_key / api_key_file },
///         /// Default workspace.
///         workspace_id: Option<String> = None,
///     }
/// }
/// ```
macro_rules! provider_settings {
    (
        $(#[$doc:meta])*
        pub struct $name:ident ($base_url:literal) {
            secrets { $( $(#[$sdoc:meta])* $secret:ident / $secret_file:ident ),* $(,)? },
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $crate::adapter::with_common_keys!($crate::adapter::provider_settings_with! {
            $(#[$doc])*
            pub struct $name ($base_url) {
                secrets { $( $(#[$sdoc])* $secret / $secret_file ),* },
                $( $(#[$fdoc])* $field : $ty = $default ),*
            }
        });
    };
}
pub(crate) use provider_settings;

/// [`provider_settings!`] with the common keys (from [`with_common_keys!`]).
macro_rules! provider_settings_with {
    (
        [ $( $(#[$cdoc:meta])* $ckey:ident : $cty:ty ),* $(,)? ]
        $(#[$doc:meta])*
        pub struct $name:ident ($base_url:literal) {
            secrets { $( $(#[$sdoc:meta])* $secret:ident / $secret_file:ident ),* $(,)? },
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[$cdoc])* pub $ckey: $cty, )*
            $(
                $(#[$sdoc])*
                #[schema(value_type = Option<String>, format = Password, default = json!(null))]
                #[serde(serialize_with = "crate::secret::serialize_redacted")]
                pub $secret: Option<secrecy::SecretString>,
                /// A file holding the secret (a mounted Kubernetes secret).
                #[schema(value_type = Option<String>)]
                pub $secret_file: Option<std::path::PathBuf>,
            )*
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                let c = $crate::adapter::Common::with_base_url($base_url);
                Self {
                    $( $ckey: c.$ckey, )*
                    $( $secret: None, $secret_file: None, )*
                    $( $field: $default, )*
                }
            }
        }

        impl $crate::adapter::ProviderSettings for $name {
            fn common(&self) -> $crate::adapter::Common {
                $crate::adapter::Common {
                    $( $ckey: self.$ckey.clone(), )*
                }
            }

            fn set_common(&mut self, c: $crate::adapter::Common) {
                $( self.$ckey = c.$ckey; )*
            }

            #[allow(unused_variables)]
            fn resolve_secret_files(
                &mut self,
                section: &str,
            ) -> Result<(), $crate::secret::SecretFileError> {
                $(
                    $crate::secret::read_secret_file(
                        &format!("{section}.{}", stringify!($secret)),
                        &mut self.$secret,
                        &self.$secret_file,
                    )?;
                )*
                Ok(())
            }

            fn secrets(&self) -> Vec<&secrecy::SecretString> {
                let all: Vec<Option<&secrecy::SecretString>> = vec![$(self.$secret.as_ref()),*];
                all.into_iter().flatten().collect()
            }
        }
    };
}

pub(crate) use provider_settings_with;
