//! Outputs of the model, polled by the driver with [`crate::Service::poll_effect`].

use crate::notify::{Notification, NotificationId};
use crate::types::{JobId, JobType};
use serde::{Deserialize, Serialize};

/// Identifies one transfer attempt; events for an attempt the model has abandoned are
/// ignored, so a driver never has to race an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferId(pub u64);

/// What a transfer moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferWhat {
    /// File `n` of the job: a download, or the upload of an upload job's only file.
    File(usize),
    /// The reply of an upload-reply job (its URL comes from the server's BITS-Reply-URL).
    Reply,
}

impl std::fmt::Display for TransferWhat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferWhat::File(n) => write!(f, "file {n}"),
            TransferWhat::Reply => f.write_str("reply"),
        }
    }
}

/// Start (or resume) moving bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStart {
    pub job: JobId,
    pub transfer: TransferId,
    pub job_type: JobType,
    pub what: TransferWhat,
    pub remote_name: String,
    pub local_name: String,
    /// Resume from this byte offset (ranged GET / upload fragment offset).
    pub offset: u64,
    /// The file's size as far as the model knows it, to detect changes on the server.
    pub known_size: Option<u64>,
    /// Credentials to answer a 401 / 407 challenge with (ref: SetCredentials).
    pub credentials: Vec<crate::credentials::Credential>,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    StartTransfer(TransferStart),
    AbortTransfer {
        job: JobId,
        transfer: TransferId,
    },
    /// Call the application's callback; answer with `notification_returned`.
    Notify(Notification),
    /// Run the job's notify command line; answer with `command_line_exited`.
    RunCommandLine {
        id: NotificationId,
        job: JobId,
        program: String,
        parameters: String,
    },
    /// Complete: move the finished temporary files to their local names.
    /// For upload-reply jobs `reply` is the path of the reply file to write: the one
    /// the client set, or the one BITS generates next to the upload file.
    RenameFiles {
        job: JobId,
        files: Vec<(usize, String)>,
        reply: Option<String>,
    },
    /// Cancel of an upload: send Cancel-Session for the job's upload session, so the
    /// server drops the partial upload (or, for an upload-reply job whose upload
    /// landed, only the reply). Answer with `cancel_session_result`.
    CancelUploadSession {
        job: JobId,
        remote_name: String,
        /// 1 for the first try, 2 for the first retry, …
        attempt: u32,
    },
    /// Cancel / Complete / timeout: delete these files' temporary files.
    DeleteTempFiles {
        job: JobId,
        files: Vec<usize>,
    },
}
