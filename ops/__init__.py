"""The operator zoo: .scan specs shipped as package data (`madc.zoo`)."""
