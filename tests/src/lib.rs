//! clokio-tests
