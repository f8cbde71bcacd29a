//! Dead-letter sinks built into the engine. Connector crates bring the sinks
//! over their own clients (a Kafka topic, an AMQP exchange, SQS, SNS, S3).

mod file;

pub use file::FileSink;
