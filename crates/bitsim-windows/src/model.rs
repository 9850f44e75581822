//! Conversions to and from `bitsim_model`'s types, for comparing a real run
//! with the model. The numbering is the same (both follow bits-spec §1.1,
//! §2.1, §5.1, §6.1), so values convert by number; a value the model does not
//! know (`Other`) has no model counterpart.

use crate::hr::Hr;
use crate::types::{ErrorContext, JobPriority, JobProgress, JobState, JobType};

impl From<Hr> for bitsim_model::Hresult {
    fn from(hr: Hr) -> Self {
        bitsim_model::Hresult(hr.0)
    }
}

impl From<bitsim_model::Hresult> for Hr {
    fn from(hr: bitsim_model::Hresult) -> Self {
        Hr(hr.0)
    }
}

macro_rules! model_enum {
    ($($ours:ident => $theirs:ident,)*) => {$(
        impl $ours {
            /// The model's value with the same number (`None` for values the
            /// model does not know).
            pub fn to_model(self) -> Option<bitsim_model::$theirs> {
                bitsim_model::$theirs::from_value(self.raw())
            }
        }

        impl From<bitsim_model::$theirs> for $ours {
            fn from(v: bitsim_model::$theirs) -> Self {
                $ours::from_raw(v.value())
            }
        }
    )*};
}

model_enum! {
    JobState => JobState,
    JobType => JobType,
    JobPriority => JobPriority,
    ErrorContext => ErrorContext,
}

impl From<JobProgress> for bitsim_model::JobProgress {
    fn from(p: JobProgress) -> Self {
        bitsim_model::JobProgress {
            bytes_total: p.bytes_total,
            bytes_transferred: p.bytes_transferred,
            files_total: p.files_total,
            files_transferred: p.files_transferred,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_value_converts_both_ways() {
        for &s in bitsim_model::JobState::ALL {
            assert_eq!(JobState::from(s).to_model(), Some(s));
        }
        for &t in bitsim_model::JobType::ALL {
            assert_eq!(JobType::from(t).to_model(), Some(t));
        }
        for &p in bitsim_model::JobPriority::ALL {
            assert_eq!(JobPriority::from(p).to_model(), Some(p));
        }
        for &c in bitsim_model::ErrorContext::ALL {
            assert_eq!(ErrorContext::from(c).to_model(), Some(c));
        }
        assert_eq!(JobState::Other(99).to_model(), None);
        assert_eq!(
            bitsim_model::Hresult::from(Hr::BG_E_HTTP_ERROR_403),
            bitsim_model::Hresult::BG_E_HTTP_ERROR_403
        );
    }
}
