//! Where an invocation goes: the Invoke URL, the function's ARN, and the
//! region an AWS endpoint names.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is escaped in the function
/// name and the qualifier, so an ARN's `:` travels as `%3A`, as AWS's SDKs
/// send it.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The account in a synthesized ARN when the name does not carry one.
const PLACEHOLDER_ACCOUNT: &str = "000000000000";

/// The region in a synthesized ARN when none is configured or implied.
const PLACEHOLDER_REGION: &str = "us-east-1";

/// `{endpoint}/2015-03-31/functions/{name}/invocations[?Qualifier=..]`, with
/// the name and qualifier percent-encoded.
pub(super) fn invoke_url(endpoint: &str, name: &str, qualifier: Option<&str>) -> String {
    let mut url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        endpoint.trim_end_matches('/'),
        utf8_percent_encode(name, PATH_SEGMENT),
    );
    if let Some(qualifier) = qualifier {
        url.push_str("?Qualifier=");
        url.extend(utf8_percent_encode(qualifier, PATH_SEGMENT));
    }
    url
}

/// The region in an AWS Lambda endpoint host: `lambda.<region>.amazonaws.com`
/// (also `lambda-fips.`, `.amazonaws.com.cn` and the dual-stack `.api.aws`).
pub(super) fn endpoint_region(host: &str) -> Option<&str> {
    let mut labels = host.split('.');
    let service = labels.next()?;
    let region = labels.next()?;
    let domain: Vec<&str> = labels.collect();
    let is_lambda = matches!(service, "lambda" | "lambda-fips");
    let is_aws = matches!(
        domain.as_slice(),
        ["amazonaws", "com"] | ["amazonaws", "com", "cn"] | ["api", "aws"]
    );
    (is_lambda && is_aws && !region.is_empty()).then_some(region)
}

/// The qualified ARN of the function, as on-failure records name it.
///
/// - A full ARN (`arn:...`) is used as written, with `:{qualifier}` appended
///   when a qualifier is configured and the ARN has none.
/// - Otherwise the ARN is synthesized as
///   `arn:{partition}:lambda:{region}:{account}:function:{name}:{qualifier}`.
///   The account comes from a partial ARN (`{account}:function:{name}`), else
///   it is the placeholder `000000000000`; the region is the configured or
///   implied one, else the placeholder `us-east-1`; the qualifier is the one
///   in the name (`{name}:{qualifier}`), else the configured one, else
///   `$LATEST`. Placeholders are there because an emulator has no account or
///   region, yet consumers of on-failure records expect an ARN's shape.
pub(super) fn function_arn(name: &str, qualifier: Option<&str>, region: Option<&str>) -> String {
    if name.starts_with("arn:") {
        // arn:partition:lambda:region:account:function:name[:qualifier]
        let has_qualifier = name.split(':').count() > 7;
        return match qualifier {
            Some(qualifier) if !has_qualifier => format!("{name}:{qualifier}"),
            _ => name.to_owned(),
        };
    }

    let parts: Vec<&str> = name.split(':').collect();
    let (account, function, named_qualifier) = match parts.as_slice() {
        [account, "function", function] => (Some(*account), *function, None),
        [account, "function", function, qualifier] => (Some(*account), *function, Some(*qualifier)),
        [function, qualifier] => (None, *function, Some(*qualifier)),
        _ => (None, name, None),
    };
    let region = region.unwrap_or(PLACEHOLDER_REGION);
    format!(
        "arn:{partition}:lambda:{region}:{account}:function:{function}:{qualifier}",
        partition = partition(region),
        account = account.unwrap_or(PLACEHOLDER_ACCOUNT),
        qualifier = named_qualifier.or(qualifier).unwrap_or("$LATEST"),
    )
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_an_arn_and_the_qualifier() {
        let url = invoke_url(
            "https://lambda.eu-west-1.amazonaws.com/",
            "arn:aws:lambda:eu-west-1:123456789012:function:orders",
            Some("$LATEST"),
        );
        assert_eq!(
            url,
            "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/\
             arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Aorders\
             /invocations?Qualifier=%24LATEST"
        );
    }

    #[test]
    fn url_without_qualifier_has_no_query() {
        let url = invoke_url("http://127.0.0.1:9000", "my_fn-1", None);
        assert_eq!(
            url,
            "http://127.0.0.1:9000/2015-03-31/functions/my_fn-1/invocations"
        );
    }

    #[test]
    fn region_comes_from_lambda_hosts_only() {
        assert_eq!(
            endpoint_region("lambda.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            endpoint_region("lambda-fips.us-east-2.amazonaws.com"),
            Some("us-east-2")
        );
        assert_eq!(
            endpoint_region("lambda.cn-north-1.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(
            endpoint_region("lambda.ap-south-1.api.aws"),
            Some("ap-south-1")
        );
        assert_eq!(endpoint_region("sqs.eu-west-1.amazonaws.com"), None);
        assert_eq!(endpoint_region("lambda.eu-west-1.example.com"), None);
        assert_eq!(endpoint_region("127.0.0.1"), None);
        assert_eq!(endpoint_region("localhost"), None);
    }

    #[test]
    fn arn_from_a_full_arn_gains_the_qualifier_once() {
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders";
        assert_eq!(function_arn(arn, None, None), arn);
        assert_eq!(function_arn(arn, Some("live"), None), format!("{arn}:live"));
        let qualified = format!("{arn}:3");
        assert_eq!(function_arn(&qualified, Some("live"), None), qualified);
    }

    #[test]
    fn arn_is_synthesized_from_a_name() {
        assert_eq!(
            function_arn("orders", None, None),
            "arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST"
        );
        assert_eq!(
            function_arn("orders", Some("live"), Some("eu-west-1")),
            "arn:aws:lambda:eu-west-1:000000000000:function:orders:live"
        );
        assert_eq!(
            function_arn("orders:7", None, Some("cn-north-1")),
            "arn:aws-cn:lambda:cn-north-1:000000000000:function:orders:7"
        );
        assert_eq!(
            function_arn("123456789012:function:orders", None, Some("eu-west-1")),
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST"
        );
        assert_eq!(
            function_arn("123456789012:function:orders:blue", Some("live"), None),
            "arn:aws:lambda:us-east-1:123456789012:function:orders:blue"
        );
    }
}
