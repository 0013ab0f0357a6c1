"""The only door to Kafka: every kafka-python client is built here, from the settings."""
