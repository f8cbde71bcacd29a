//! Classification of Invoke API answers, per dialect (reference, sections 2.2,
//! 2.3, 2.5, 2.6).

use bytes::Bytes;

use super::FunctionErrorInfo;

pub(super) fn error_info(body: &Bytes) -> FunctionErrorInfo {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "errorMessage")]
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => FunctionErrorInfo {
            error_type: b.error_type,
            message: b.message,
        },
        Err(_) => FunctionErrorInfo::default(),
    }
}
