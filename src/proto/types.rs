//! Shared message types: protobuf's well-known `Any`, `Timestamp` and
//! `Empty`, containerd's `containerd.types.Mount`, `Descriptor` and
//! `Platform` (api/types/{mount,descriptor,platform}.proto) and
//! `google.rpc.Status` (google/rpc/status.proto).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// google.protobuf.Any: a message of another type, named by `type_url`.
/// containerd names its event types with the bare name
/// (`containerd.events.TaskExit`), not a `type.googleapis.com/` URL.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// google.protobuf.Timestamp: seconds and nanoseconds since the Unix epoch
/// (UTC); `nanos` is always in 0..1e9, also before 1970.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// The instant this timestamp names.
    pub fn to_system_time(self) -> SystemTime {
        let nanos = Duration::from_nanos(self.nanos.clamp(0, 999_999_999) as u64);
        if self.seconds >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.seconds as u64) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(self.seconds.unsigned_abs()) + nanos
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            },
            // Before 1970: round the seconds down so that nanos stays positive.
            Err(e) => {
                let d = e.duration();
                let (mut seconds, mut nanos) = (-(d.as_secs() as i64), d.subsec_nanos() as i32);
                if nanos > 0 {
                    seconds -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Timestamp { seconds, nanos }
            }
        }
    }
}

/// google.protobuf.Empty.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Empty {}

/// containerd.types.Mount: one mount of a container's rootfs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub source: String,
    #[prost(string, tag = "3")]
    pub target: String,
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
}

/// containerd.types.Descriptor: a content-addressed blob (OCI descriptor).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Descriptor {
    #[prost(string, tag = "1")]
    pub media_type: String,
    #[prost(string, tag = "2")]
    pub digest: String,
    #[prost(int64, tag = "3")]
    pub size: i64,
    // 4 is not used.
    #[prost(btree_map = "string, string", tag = "5")]
    pub annotations: BTreeMap<String, String>,
}

/// containerd.types.Platform.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Platform {
    #[prost(string, tag = "1")]
    pub os: String,
    #[prost(string, tag = "2")]
    pub architecture: String,
    #[prost(string, tag = "3")]
    pub variant: String,
}

/// google.rpc.Status: the error of a failed ttrpc/gRPC call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_system_time_also_before_the_epoch() {
        for t in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::new(5, 250_000_000),
        ] {
            let ts = Timestamp::from(t);
            assert!((0..1_000_000_000).contains(&ts.nanos), "{ts:?}");
            assert_eq!(ts.to_system_time(), t);
        }
        let before = Timestamp::from(UNIX_EPOCH - Duration::new(5, 250_000_000));
        assert_eq!((before.seconds, before.nanos), (-6, 750_000_000));
    }
}
