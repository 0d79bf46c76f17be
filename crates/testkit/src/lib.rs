//! clokio-testkit
