//! PVE authentication: tickets with their CSRF tokens, and API tokens.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

use crate::api::ApiError;

/// How long PVE accepts a ticket.
const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// Who made a request, once authenticated.
#[derive(Clone, Debug)]
pub(crate) enum Principal {
    /// A ticket from `/access/ticket`, bound to its CSRF token.
    Ticket {
        /// `root@pam`.
        user: String,
        /// The CSRF token issued with the ticket.
        csrf: String,
    },
    /// An API token; needs no CSRF token.
    Token {
        /// `root@pam!ci`.
        id: String,
    },
}

impl Principal {
    /// The user a task runs as (the full token id for tokens, as in real UPIDs).
    pub(crate) fn user(&self) -> &str {
        match self {
            Principal::Ticket { user, .. } => user,
            Principal::Token { id } => id,
        }
    }
}

/// A ticket the simulator issued.
struct Issued {
    user: String,
    csrf: String,
    at: Instant,
}

/// What a successful login returns.
pub(crate) struct Login {
    /// The `PVE:…` ticket.
    pub ticket: String,
    /// The matching CSRF token.
    pub csrf: String,
    /// The normalized user name, `root@pam`.
    pub username: String,
}

/// Unpredictable bytes without a random-number crate: a per-process key from std's randomly
/// keyed hasher, stretched with SHA-256 and a counter.
struct Entropy {
    key: [u8; 32],
    counter: u64,
}

impl Entropy {
    fn new() -> Entropy {
        let mut hasher = Sha256::new();
        for salt in 0..4u64 {
            hasher.update(RandomState::new().hash_one(salt).to_le_bytes());
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.update(nanos.to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        Entropy {
            key: hasher.finalize().into(),
            counter: 0,
        }
    }

    fn next(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(self.counter.to_le_bytes());
        hasher.finalize().into()
    }
}

/// The simulator's credentials and issued tickets (its `Debug` output shows no secrets).
pub(crate) struct Auth {
    username: String,
    password: String,
    tokens: HashMap<String, String>,
    tickets: HashMap<String, Issued>,
    entropy: Entropy,
}

/// Seconds since the Unix epoch, saturating into 32 bits as PVE's hex timestamps do.
pub(crate) fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("tokens", &self.tokens.keys().collect::<Vec<_>>())
            .field("tickets", &self.tickets.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Credentials for one user plus its API tokens (`root@pam!ci` → secret).
    pub(crate) fn new(username: &str, password: &str, tokens: &[(String, String)]) -> Auth {
        Auth {
            username: username.to_string(),
            password: password.to_string(),
            tokens: tokens.iter().cloned().collect(),
            tickets: HashMap::new(),
            entropy: Entropy::new(),
        }
    }

    /// `POST /access/ticket`: the password, or a still valid ticket (PVE's renewal), buys a ticket.
    pub(crate) fn login(
        &mut self,
        username: &str,
        realm: Option<&str>,
        password: &str,
    ) -> Result<Login, ApiError> {
        // PVE appends the realm only when the user name does not already carry one.
        let user = match realm {
            Some(realm) if !username.contains('@') && !realm.is_empty() => {
                format!("{username}@{realm}")
            }
            _ => username.to_string(),
        };
        let renews = self
            .valid_ticket(password)
            .is_some_and(|issued| issued.user == user);
        if user != self.username || !(password == self.password || renews) {
            return Err(ApiError::new(401, "authentication failure"));
        }
        let stamp = format!("{:08X}", unix_now());
        let signature = [self.entropy.next(), self.entropy.next()].concat();
        let ticket = format!("PVE:{user}:{stamp}::{}", STANDARD.encode(signature));
        let csrf = format!("{stamp}:{}", STANDARD_NO_PAD.encode(self.entropy.next()));
        self.tickets.insert(
            ticket.clone(),
            Issued {
                user: user.clone(),
                csrf: csrf.clone(),
                at: Instant::now(),
            },
        );
        Ok(Login {
            ticket,
            csrf,
            username: user,
        })
    }

    fn valid_ticket(&self, ticket: &str) -> Option<&Issued> {
        self.tickets
            .get(ticket)
            .filter(|issued| issued.at.elapsed() < TICKET_LIFETIME)
    }

    /// Identifies the caller from an `Authorization: PVEAPIToken=…` header or the
    /// `PVEAuthCookie` cookie; the token wins when both are present, as in PVE.
    pub(crate) fn authenticate(
        &self,
        authorization: Option<&str>,
        cookie_headers: &[&str],
    ) -> Result<Principal, ApiError> {
        let no_ticket = || ApiError::new(401, "No ticket");
        if let Some(token) = authorization.and_then(|h| h.trim().strip_prefix("PVEAPIToken=")) {
            let (id, secret) = token.split_once('=').ok_or_else(no_ticket)?;
            return match self.tokens.get(id) {
                Some(expected) if expected == secret => Ok(Principal::Token { id: id.to_string() }),
                _ => Err(no_ticket()),
            };
        }
        let ticket = cookie_headers
            .iter()
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix("PVEAuthCookie="))
            .map(crate::api::percent_decode)
            .find(|ticket| self.valid_ticket(ticket).is_some())
            .ok_or_else(no_ticket)?;
        let issued = self.valid_ticket(&ticket).ok_or_else(no_ticket)?;
        Ok(Principal::Ticket {
            user: issued.user.clone(),
            csrf: issued.csrf.clone(),
        })
    }

    /// Writes with a ticket must carry its CSRF token; token-authenticated writes need none.
    pub(crate) fn check_csrf(principal: &Principal, header: Option<&str>) -> Result<(), ApiError> {
        match principal {
            Principal::Ticket { csrf, .. } if header != Some(csrf.as_str()) => Err(ApiError::new(
                401,
                "Permission check failed (invalid csrf token)",
            )),
            _ => Ok(()),
        }
    }

    /// Forgets every issued ticket, so the next request with one gets 401.
    pub(crate) fn expire_all(&mut self) {
        self.tickets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            "root@pam",
            "pw",
            &[("root@pam!ci".to_string(), "s3cret".to_string())],
        )
    }

    #[test]
    fn ticket_and_csrf_have_pve_shape() {
        let mut auth = auth();
        let login = auth.login("root", Some("pam"), "pw").unwrap();
        let parts: Vec<&str> = login.ticket.splitn(5, ':').collect();
        assert_eq!(&parts[..2], ["PVE", "root@pam"]);
        assert_eq!(parts[2].len(), 8);
        assert!(u32::from_str_radix(parts[2], 16).is_ok());
        assert_eq!(parts[3], "");
        assert!(!parts[4].is_empty());
        let (stamp, random) = login.csrf.split_once(':').unwrap();
        assert_eq!(stamp, parts[2]);
        assert!(random.len() >= 40);
        assert_eq!(login.username, "root@pam");
    }

    #[test]
    fn tickets_are_unique() {
        let mut auth = auth();
        let a = auth.login("root@pam", None, "pw").unwrap();
        let b = auth.login("root@pam", None, "pw").unwrap();
        assert_ne!(a.ticket, b.ticket);
        assert_ne!(a.csrf, b.csrf);
    }

    #[test]
    fn wrong_user_or_password_fails() {
        let mut auth = auth();
        for (user, realm, password) in [
            ("root@pam", None, "nope"),
            ("root", None, "pw"),
            ("admin", Some("pam"), "pw"),
            ("root", Some("pve"), "pw"),
        ] {
            let Err(err) = auth.login(user, realm, password) else {
                panic!("{user} / {password} logged in");
            };
            assert_eq!(err.status, 401);
            assert_eq!(err.message, "authentication failure");
        }
    }

    #[test]
    fn a_valid_ticket_renews_itself() {
        let mut auth = auth();
        let first = auth.login("root@pam", None, "pw").unwrap();
        let renewed = auth.login("root@pam", None, &first.ticket).unwrap();
        assert_ne!(renewed.ticket, first.ticket);
        auth.expire_all();
        assert!(auth.login("root@pam", None, &renewed.ticket).is_err());
    }

    #[test]
    fn cookie_may_be_percent_encoded_among_other_cookies() {
        let mut auth = auth();
        let login = auth.login("root@pam", None, "pw").unwrap();
        let encoded = login.ticket.replace(':', "%3A").replace('@', "%40");
        let header = format!("lang=en; PVEAuthCookie={encoded}");
        let principal = auth.authenticate(None, &[&header]).unwrap();
        assert_eq!(principal.user(), "root@pam");
    }

    #[test]
    fn tokens_are_checked_by_id_and_secret() {
        let auth = auth();
        let ok = auth
            .authenticate(Some("PVEAPIToken=root@pam!ci=s3cret"), &[])
            .unwrap();
        assert_eq!(ok.user(), "root@pam!ci");
        assert!(Auth::check_csrf(&ok, None).is_ok());
        for bad in [
            "PVEAPIToken=root@pam!ci=wrong",
            "PVEAPIToken=root@pam!other=s3cret",
            "PVEAPIToken=root@pam!ci",
        ] {
            assert_eq!(auth.authenticate(Some(bad), &[]).unwrap_err().status, 401);
        }
    }
}
