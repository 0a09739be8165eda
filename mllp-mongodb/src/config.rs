//! Where a [`MongoStore`](crate::MongoStore) writes: the store URL, split into the driver's
//! connection string and this crate's own options (`collection`, `dedup`).

use std::time::Duration;

use crate::error::Error;

/// The collection used when the URL names none.
pub const DEFAULT_COLLECTION: &str = "messages";

/// How long the store waits for a server to be available before an operation fails, unless
/// the URL sets `serverSelectionTimeoutMS` (the driver's own default is 30 s: too long for a
/// listener that must answer `AE` while the sender still waits).
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TCP connection to a server may take, unless the URL sets `connectTimeoutMS`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an insert waits for its write concern (a majority of the replica set) before it
/// fails, unless the URL sets `wtimeoutMS`: without a limit a majority that cannot be reached
/// would hold the connection until the sender gives up.
pub const DEFAULT_WRITE_CONCERN_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of a [`MongoStore`](crate::MongoStore): a MongoDB connection string (which
/// names the database), the collection, and whether resends are recognised.
///
/// Built from a store URL with [`Config::from_url`] (what `mllp listen --store` does), or from a
/// connection string and builder methods:
///
/// ```
/// use mllp_mongodb::Config;
///
/// let config = Config::from_url("mongodb://db1:27017/hl7?collection=adt&dedup=true&w=1")?;
/// assert_eq!(config.connection_string(), "mongodb://db1:27017/hl7?w=1");
/// assert_eq!((config.collection_name(), config.is_dedup()), ("adt", true));
///
/// let same = Config::new("mongodb://db1:27017/hl7?w=1").collection("adt").dedup(true);
/// assert_eq!(same, config);
/// # Ok::<(), mllp_mongodb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    connection_string: String,
    collection: String,
    dedup: bool,
}

impl Config {
    /// A store writing to the database `connection_string` names (its path: `mongodb://HOST/DB`),
    /// collection [`DEFAULT_COLLECTION`], without duplicate detection. Every option of the
    /// string goes to the driver.
    pub fn new(connection_string: impl Into<String>) -> Config {
        Config {
            connection_string: connection_string.into(),
            collection: DEFAULT_COLLECTION.to_owned(),
            dedup: false,
        }
    }

    /// Reads a store URL: a MongoDB connection string whose query may also hold
    /// `collection=NAME` (percent-encoded; default [`DEFAULT_COLLECTION`]) and `dedup=true|false`
    /// (default false). Those two are taken out; every other option goes to the driver.
    ///
    /// # Errors
    /// [`Error`] of kind [`Url`](crate::ErrorKind::Url) for a scheme other than `mongodb://` or
    /// `mongodb+srv://`, an empty or badly escaped collection name, a `dedup` value other than
    /// `true` or `false`, or an option given twice.
    pub fn from_url(url: &str) -> Result<Config, Error> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("mongodb" | "mongodb+srv")) {
            return Err(Error::url(
                "a MongoDB store URL starts with mongodb:// or mongodb+srv://",
            ));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        // The driver takes the scheme in lower case only.
        let base = match base.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None => base.to_owned(),
        };
        let mut config = Config::new(base.as_str());
        let (mut collection, mut dedup) = (None, None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key.eq_ignore_ascii_case("collection") {
                if collection.is_some() {
                    return Err(Error::url("collection is given twice"));
                }
                let name = mllp::store::percent_decode(value)
                    .ok_or_else(|| Error::url("the collection name has a bad percent escape"))?;
                if name.is_empty() || name.contains('\0') || name.starts_with('$') {
                    return Err(Error::url(format!("{name:?} is not a collection name")));
                }
                collection = Some(name);
            } else if key.eq_ignore_ascii_case("dedup") {
                if dedup.is_some() {
                    return Err(Error::url("dedup is given twice"));
                }
                dedup = Some(match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::url(format!("dedup is true or false, not {value:?}"))),
                });
            } else {
                rest.push(pair);
            }
        }
        if !rest.is_empty() {
            config.connection_string = format!("{base}?{}", rest.join("&"));
        }
        if let Some(name) = collection {
            config.collection = name;
        }
        config.dedup = dedup.unwrap_or(false);
        Ok(config)
    }

    /// Writes to the collection `name`.
    #[must_use]
    pub fn collection(mut self, name: impl Into<String>) -> Config {
        self.collection = name.into();
        self
    }

    /// With `true`, a unique index on (`sending_application`, `sending_facility`, `control_id`)
    /// is created when the store opens, and a resend of a message already stored is answered
    /// with a [duplicate receipt](mllp::Receipt::duplicate) instead of a second document.
    #[must_use]
    pub fn dedup(mut self, on: bool) -> Config {
        self.dedup = on;
        self
    }

    /// The connection string handed to the driver (this crate's options taken out). It may
    /// hold credentials: never log it; [`redacted`](Self::redacted) is for people.
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// The collection messages are written to.
    pub fn collection_name(&self) -> &str {
        &self.collection
    }

    /// Whether resends are recognised (`dedup=true`).
    pub fn is_dedup(&self) -> bool {
        self.dedup
    }

    /// The store as operators see it: scheme, hosts, database and this crate's options, with
    /// no user name, password or driver option (which may hold secrets):
    /// `mongodb://db1:27017/hl7?collection=adt&dedup=true`.
    pub fn redacted(&self) -> String {
        let s = &self.connection_string;
        let (scheme, rest) = s.split_once("://").unwrap_or(("mongodb", s));
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        // User info ends at the last `@` of the authority (a password's `@` must be escaped).
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let mut name = format!("{scheme}://{hosts}{path}?collection={}", self.collection);
        if self.dedup {
            name.push_str("&dedup=true");
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_options_are_taken_out_and_the_rest_kept() {
        let c = Config::from_url("mongodb://h:1/db").unwrap();
        assert_eq!(c.connection_string(), "mongodb://h:1/db");
        assert_eq!(
            (c.collection_name(), c.is_dedup()),
            (DEFAULT_COLLECTION, false)
        );
        let c = Config::from_url(
            "mongodb://u:p%40ss@h1:1,h2:2/db?w=2&Collection=in%20box&journal=false&DEDUP=True",
        )
        .unwrap();
        assert_eq!(
            c.connection_string(),
            "mongodb://u:p%40ss@h1:1,h2:2/db?w=2&journal=false"
        );
        assert_eq!((c.collection_name(), c.is_dedup()), ("in box", true));
        assert_eq!(
            c.redacted(),
            "mongodb://h1:1,h2:2/db?collection=in box&dedup=true"
        );
        let c = Config::from_url("MongoDB://h/db?collection=x").unwrap();
        assert_eq!(c.connection_string(), "mongodb://h/db");
        let c = Config::from_url("mongodb+srv://user@cluster.example/db?tls=true").unwrap();
        assert_eq!(
            c.redacted(),
            "mongodb+srv://cluster.example/db?collection=messages"
        );
    }

    #[test]
    fn bad_urls_are_errors() {
        for url in [
            "amqp://h/db",
            "mongodb://h/db?collection=",
            "mongodb://h/db?collection=%zz",
            "mongodb://h/db?collection=a&collection=b",
            "mongodb://h/db?dedup=yes",
            "mongodb://h/db?dedup=true&dedup=false",
            "mongodb://h/db?collection=$cmd",
        ] {
            let e = Config::from_url(url).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Url, "{url}: {e}");
        }
    }
}
