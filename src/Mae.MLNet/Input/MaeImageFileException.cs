namespace Mae.MLNet.Input;

/// <summary>An image file (or in-memory encoded image) that cannot be used: missing or unreadable, empty, not an image,
/// truncated or corrupt, or larger than the configured limits. The message names the file and what was wrong.</summary>
public sealed class MaeImageFileException : IOException
{
    /// <summary>The file path, or the name given to an in-memory image (e.g. "row 17").</summary>
    public string FileName { get; }
    /// <summary>What was wrong, without the file name.</summary>
    public string Reason { get; }

    public MaeImageFileException(string fileName, string reason, Exception? inner = null)
        : base($"Image '{fileName}': {reason}", inner)
    {
        FileName = fileName;
        Reason = reason;
    }
}
