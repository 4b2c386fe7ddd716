//! Configurations: the JSON Schema against the filter's parser (`schema`), every example of
//! examples/ end to end (`examples`), and `tollgatectl validate` (`validate`).

mod examples;
mod schema;
mod validate;
