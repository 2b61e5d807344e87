namespace Mae.MLNet.Interop;

/// <summary>A weights file that cannot be loaded: corrupt, truncated, hostile, or not matching the model.
/// The message says which file, what was expected and what was found.</summary>
public sealed class MaeCheckpointException : IOException
{
    public MaeCheckpointException(string message, Exception? inner = null) : base(message, inner) { }
}
