//! The router model: training, evaluation and classification with candle.
