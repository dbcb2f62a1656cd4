//! Grace-period tuning from image size and learned start-up history.
