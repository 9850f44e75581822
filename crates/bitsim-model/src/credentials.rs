//! Credentials: IBackgroundCopyJob2::SetCredentials / RemoveCredentials, kept per
//! (target, scheme) pair and handed to the transfer, which answers a 401 / 407
//! challenge with them.
//!
//! ref: IBackgroundCopyJob2::SetCredentials, ::RemoveCredentials, BG_AUTH_CREDENTIALS,
//! BG_BASIC_CREDENTIALS (Microsoft Learn).

use crate::api::ApiResult;
use crate::rules::Method;
use crate::service::Service;
use crate::types::{JobId, Time};
use crate::Hresult;
use serde::{Deserialize, Serialize};

/// `BG_AUTH_TARGET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthTarget {
    Server,
    Proxy,
}

/// `BG_AUTH_SCHEME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    Basic,
    Digest,
    Ntlm,
    Negotiate,
    Passport,
}

impl AuthTarget {
    /// From a raw `BG_AUTH_TARGET` (SERVER = 1, PROXY = 2); any other value is
    /// BG_E_INVALID_AUTH_TARGET (ref: IBackgroundCopyJob2::SetCredentials, return
    /// values: "Unrecognized target enumeration value").
    pub fn from_windows(value: u32) -> Result<AuthTarget, Hresult> {
        match value {
            1 => Ok(AuthTarget::Server),
            2 => Ok(AuthTarget::Proxy),
            _ => Err(Hresult::BG_E_INVALID_AUTH_TARGET),
        }
    }
}

impl AuthScheme {
    /// From a raw `BG_AUTH_SCHEME` (BASIC = 1 … PASSPORT = 5); any other value is
    /// BG_E_INVALID_AUTH_SCHEME (ref: IBackgroundCopyJob2::SetCredentials, return
    /// values: "Unrecognized scheme enumeration value").
    pub fn from_windows(value: u32) -> Result<AuthScheme, Hresult> {
        match value {
            1 => Ok(AuthScheme::Basic),
            2 => Ok(AuthScheme::Digest),
            3 => Ok(AuthScheme::Ntlm),
            4 => Ok(AuthScheme::Negotiate),
            5 => Ok(AuthScheme::Passport),
            _ => Err(Hresult::BG_E_INVALID_AUTH_SCHEME),
        }
    }
}

/// One `BG_AUTH_CREDENTIALS`; `None` user and password with NTLM / Negotiate are the
/// implicit credentials (the logged-on user's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub target: AuthTarget,
    pub scheme: AuthScheme,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl Credential {
    /// Implicit credentials: NTLM or Negotiate without a user name.
    pub fn is_implicit(&self) -> bool {
        matches!(self.scheme, AuthScheme::Ntlm | AuthScheme::Negotiate) && self.user.is_none()
    }
}

/// BG_BASIC_CREDENTIALS limits (ref: BG_BASIC_CREDENTIALS: user name ≤ 300, password
/// ≤ 65,536 characters).
const MAX_USER_NAME: usize = 300;
const MAX_PASSWORD: usize = 65_536;

impl Service {
    /// SetCredentials: replaces the credentials of the same target and scheme.
    pub fn set_credentials(&mut self, now: Time, id: JobId, credential: Credential) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::SetCredentials).map(|_| ()).and_then(|_| {
            let too_long = |s: &Option<String>, max: usize| s.as_ref().is_some_and(|s| s.chars().count() > max);
            if too_long(&credential.user, MAX_USER_NAME) {
                return Err(Hresult::BG_E_USERNAME_TOO_LARGE);
            }
            if too_long(&credential.password, MAX_PASSWORD) {
                return Err(Hresult::BG_E_PASSWORD_TOO_LARGE);
            }
            // ref: SetCredentials: "UserName and Password … cannot be NULL if you specify
            // the Basic or Digest scheme"
            let needs_both = matches!(credential.scheme, AuthScheme::Basic | AuthScheme::Digest);
            if needs_both && (credential.user.is_none() || credential.password.is_none()) {
                return Err(Hresult::E_INVALIDARG);
            }
            Ok(())
        });
        let describe = format!("SetCredentials({:?}, {:?})", credential.target, credential.scheme);
        let result = result.map(|_| {
            let job = self.job_mut(id);
            job.credentials
                .retain(|c| (c.target, c.scheme) != (credential.target, credential.scheme));
            job.credentials.push(credential);
            self.touched(id);
        });
        self.traced(Some(id), || describe, result)
    }

    /// RemoveCredentials: S_FALSE when none were set for the pair (ref:
    /// RemoveCredentials: "No credentials have been set using the given target and
    /// scheme pair").
    pub fn remove_credentials(
        &mut self,
        now: Time,
        id: JobId,
        target: AuthTarget,
        scheme: AuthScheme,
    ) -> ApiResult<Hresult> {
        self.advance(now);
        let result = self.guard(id, Method::SetCredentials).map(|_| ());
        let result = result.map(|_| {
            let job = self.job_mut(id);
            let before = job.credentials.len();
            job.credentials.retain(|c| (c.target, c.scheme) != (target, scheme));
            if job.credentials.len() == before {
                Hresult::S_FALSE
            } else {
                self.touched(id);
                Hresult::S_OK
            }
        });
        self.traced_code(
            Some(id),
            || format!("RemoveCredentials({target:?}, {scheme:?})"),
            result,
        )
    }

    /// The credentials a transfer may answer challenges with. Implicit proxy
    /// credentials also serve the server unless explicit server credentials exist
    /// (ref: SetCredentials remarks).
    pub(crate) fn transfer_credentials(&self, id: JobId) -> Vec<Credential> {
        let mut creds = self.job(id).credentials.clone();
        let has_server = creds.iter().any(|c| c.target == AuthTarget::Server);
        if !has_server {
            let implicit: Vec<Credential> = creds
                .iter()
                .filter(|c| c.target == AuthTarget::Proxy && c.is_implicit())
                .map(|c| Credential {
                    target: AuthTarget::Server,
                    ..c.clone()
                })
                .collect();
            creds.extend(implicit);
        }
        creds
    }
}

#[cfg(test)]
mod windows_value_tests {
    use super::*;

    #[test]
    fn unrecognized_targets_and_schemes_have_their_own_codes() {
        assert_eq!(AuthTarget::from_windows(2), Ok(AuthTarget::Proxy));
        assert_eq!(AuthTarget::from_windows(0), Err(Hresult::BG_E_INVALID_AUTH_TARGET));
        assert_eq!(AuthScheme::from_windows(4), Ok(AuthScheme::Negotiate));
        assert_eq!(AuthScheme::from_windows(6), Err(Hresult::BG_E_INVALID_AUTH_SCHEME));
    }
}
