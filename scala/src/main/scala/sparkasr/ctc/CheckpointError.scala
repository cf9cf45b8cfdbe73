package sparkasr.ctc

final class CheckpointError(message: String) extends IllegalArgumentException(message)
