//! Recurrent kernels (RNN / LSTM / GRU): fused gate non-linearities and state updates,
//! and backpropagation through time for a whole sequence.
