namespace Mae.MLNet.Interop;

/// <summary>
/// How much a weights file may make the loader read, hold and build before it is trusted. Every number a file
/// states (pickle opcodes, archive entry sizes, header lengths, tensor shapes, layer counts in a config) is checked
/// against these limits and against the bytes the file really holds before memory is committed to it. The defaults
/// admit every public MAE (ViT-H/14 with its optimizer state is ~7.6 GB, of which ~2.5 GB are the weights loaded);
/// raise them for truly huge models.
/// </summary>
public sealed record MaeLoadLimits
{
    /// <summary>The limits used when none are passed.</summary>
    public static MaeLoadLimits Default { get; } = new();

    /// <summary>Total bytes of the tensors loaded from one file (the weights the model uses; optimizer moments and
    /// other extras are described, not loaded). Default 16 GiB.</summary>
    public long MaxTensorBytes { get; init; } = 16L << 30;

    /// <summary>Size of a checkpoint's pickle (<c>data.pkl</c>), which only describes tensors; real ones are well under
    /// 1 MiB. Default 16 MiB.</summary>
    public long MaxPickleBytes { get; init; } = 16L << 20;

    /// <summary>Values the pickle may push, memoize or add to containers while it is walked (a state dict needs a few
    /// dozen per tensor). Bounds the walker's memory by the file, not by what it claims. Default 1 000 000.</summary>
    public int MaxPickleValues { get; init; } = 1_000_000;

    /// <summary>Entries of a zip archive (torch.save writes one per storage plus a few). Default 100 000.</summary>
    public int MaxArchiveEntries { get; init; } = 100_000;

    /// <summary>Uncompressed bytes read from an archive, as a multiple of its size on disk. torch.save stores
    /// entries uncompressed (ratio 1); a re-zipped file of float weights compresses far less than this. Default 16.</summary>
    public double MaxCompressionRatio { get; init; } = 16;

    /// <summary>Length of a safetensors JSON header. Default 16 MiB.</summary>
    public long MaxSafetensorsHeaderBytes { get; init; } = 16L << 20;

    /// <summary>Size of a config file (Hugging Face <c>config.json</c>, the JSON beside our safetensors). Default 1 MiB.</summary>
    public long MaxConfigFileBytes { get; init; } = 1L << 20;

    /// <summary>Transformer blocks in the encoder or the decoder (ViT-H has 32; ViT-22B 48). Default 1 024.</summary>
    public int MaxLayers { get; init; } = 1024;

    /// <summary>Embedding width, MLP width, image side or class count any file may claim. Default 65 536.</summary>
    public int MaxWidth { get; init; } = 65_536;

    internal MaeLoadLimits Validate()
    {
        if (MaxTensorBytes < 1 || MaxPickleBytes < 1 || MaxPickleValues < 1 || MaxArchiveEntries < 1 || !(MaxCompressionRatio >= 1)
            || MaxSafetensorsHeaderBytes < 2 || MaxConfigFileBytes < 2 || MaxLayers < 1 || MaxWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(MaeLoadLimits),
                $"Every MaeLoadLimits value must be positive (MaxCompressionRatio at least 1); got {this}.");
        return this;
    }
}
