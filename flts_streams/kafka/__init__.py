"""The broker and the Faust/aiokafka adaptations: embedded Tansu, the seek-safe consumer, topics, flow control."""
