namespace Mae.MLNet.Interop;

/// <summary>A model file that cannot be loaded — a weights file (<see cref="MaeWeightFile"/>), a config file beside it, or
/// a saved model zip (<c>mlContext.Model.Verify</c>): corrupt, truncated, hostile, over a <see cref="MaeLoadLimits"/>
/// limit, or not matching the model. The message says which file (and which entry of it), what was expected and what
/// was found. Training checkpoints have their own <see cref="Training.MaeTrainingCheckpointException"/>.</summary>
public sealed class MaeModelFileException : IOException
{
    public MaeModelFileException(string message, Exception? inner = null) : base(message, inner) { }

    internal MaeModelFileException(string message, string? file, string? entry, Exception? inner = null) : base(message, inner)
    {
        FilePath = file;
        Entry = entry;
    }

    /// <summary>The file that failed, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The part of the file that failed (zip entry, tensor name, JSON key), when known.</summary>
    public string? Entry { get; }
}
