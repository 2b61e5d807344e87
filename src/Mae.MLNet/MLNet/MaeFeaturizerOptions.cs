using Mae.MLNet.Model;
using Mae.MLNet.Runtime;

namespace Mae.MLNet;

/// <summary>Options of <c>MaeFeaturize</c>: which column to read, how to pool, how to batch.</summary>
public sealed class MaeFeaturizerOptions
{
    /// <summary>New column: a vector of <see cref="float"/> of the encoder's width.</summary>
    public string OutputColumnName { get; set; } = "Features";
    /// <summary>Either a known-size Single vector in CHW order (<c>ExtractPixels(…, interleavePixelColors: false)</c>),
    /// or an <c>MLImage</c> column (<c>LoadImages</c>/<c>ResizeImages</c>), converted inside.</summary>
    public string InputColumnName { get; set; } = "Pixels";
    public MaePooling Pooling { get; set; } = MaePooling.Cls;
    /// <summary>How many of the last encoder blocks give a pooled vector (each through the final norm, concatenated
    /// earliest first): the output has <c>Layers × D</c> values. 1 (default) = the last block only. Several layers
    /// often probe better than one (DINO's linear evaluation uses the last 4; <see cref="MaeConfig.FeatureLayers"/> is the
    /// number the library's tools use by default). A ConvNeXt V2 featurizer pools the last n stages instead (1–4;
    /// <see cref="Model.ConvNextV2.ForwardFeatures(TorchSharp.torch.Tensor, int)"/>).</summary>
    public int Layers { get; set; } = 1;
    /// <summary>Rows per forward pass, 1 to 4096.</summary>
    public int BatchSize { get; set; } = 32;
    public MaeDevice Device { get; set; } = MaeDevice.Auto;
    /// <summary>Applied to vector columns. Null: <see cref="PixelNormalization.Default"/> for the model's channels.
    /// MLImage columns are always read as [0, 1] values first (Scale is ignored for them).</summary>
    public PixelNormalization? Normalization { get; set; }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(OutputColumnName)) throw new ArgumentException("OutputColumnName must be set.");
        if (string.IsNullOrWhiteSpace(InputColumnName)) throw new ArgumentException("InputColumnName must be set.");
        MaeInputs.CheckInferenceBatchSize(BatchSize, nameof(BatchSize));
        MaeEncoder.CheckPooling(Pooling, nameof(Pooling));
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "Layers must be at least 1 (the last block).");
    }
}
