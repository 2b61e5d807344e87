namespace Mae.MLNet.Interop;

/// <summary>A weights file that cannot be loaded: corrupt, truncated, hostile, over a <see cref="MaeLoadLimits"/>
/// limit, or not matching the model. Every failure while reading a weights file (or a config file beside it) is this
/// type; the message says which file (and which entry of it), what was expected and what was found.</summary>
public sealed class MaeCheckpointException : IOException
{
    public MaeCheckpointException(string message, Exception? inner = null) : base(message, inner) { }

    internal MaeCheckpointException(string message, string? file, string? entry, Exception? inner = null) : base(message, inner)
    {
        FilePath = file;
        Entry = entry;
    }

    /// <summary>The file that failed, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The part of the file that failed (zip entry, tensor name, JSON key), when known.</summary>
    public string? Entry { get; }
}
