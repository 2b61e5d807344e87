namespace Mae.MLNet.Training;

/// <summary>A training checkpoint (pre-training or fine-tuning) that cannot be used: truncated, damaged, forged
/// (a recomputed checksum over a header or sizes that do not fit what the file holds), or written for another model.
/// The message names the file and says what was expected and what was found. (Earlier versions threw
/// <see cref="InvalidDataException"/>, which is sealed.)</summary>
public sealed class MaeTrainingCheckpointException : IOException
{
    public MaeTrainingCheckpointException(string message, string? filePath = null, Exception? inner = null) : base(message, inner)
        => FilePath = filePath;

    /// <summary>The checkpoint file, when known.</summary>
    public string? FilePath { get; }
}
