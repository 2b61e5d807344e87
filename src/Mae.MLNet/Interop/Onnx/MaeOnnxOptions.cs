using Mae.MLNet.Model;

namespace Mae.MLNet.Interop.Onnx;

public sealed partial class MaeOnnxOptions
{
    /// <summary>Shape of the exported graph's pixel input.</summary>
    public enum Layout
    {
        /// <summary><c>[batch, C·H·W]</c>: one flat CHW vector per row, as ML.NET's
        /// <c>ExtractPixels(interleavePixelColors: false)</c> produces.</summary>
        FlatChw,
        /// <summary><c>[batch, C, H, W]</c>.</summary>
        Nchw,
    }
}

/// <summary>
/// Settings of an ONNX export (<see cref="MaeOnnxExport"/>) of the MAE encoder, a <see cref="VitClassifier"/> or an
/// attentive probe. The graph computes <see cref="Normalization"/>, <c>x' = (x · Scale − Mean[c]) / Std[c]</c> per
/// channel (when set), then the model, with a symbolic batch dimension named <c>batch</c>.
/// </summary>
public sealed partial class MaeOnnxOptions
{
    /// <summary>Name of the pixel input.</summary>
    public string InputName { get; set; } = "pixels";
    /// <summary>Name of the <c>[batch, D]</c> feature output.</summary>
    public string FeaturesName { get; set; } = "features";
    public MaeOnnxOptions.Layout InputLayout { get; set; } = MaeOnnxOptions.Layout.FlatChw;
    /// <summary>No batch axis: the input is one image ([C·H·W] or [C, H, W]) and every output one row ([D]). This is
    /// what ML.NET's OnnxTransformer expects (it scores row by row and would otherwise type a [batch, D] output as
    /// a [1, D] tensor column).</summary>
    public bool PerRow { get; set; }
    /// <summary>Which token becomes the feature vector (encoder export only; a <see cref="VitClassifier"/> uses
    /// its own <see cref="VitClassifier.GlobalPool"/>, an attentive probe its pooler).</summary>
    public MaePooling Pooling { get; set; } = MaePooling.Cls;
    /// <summary>Pooled vectors of the last n blocks, each through the final norm, concatenated (encoder export only;
    /// see <see cref="MaeEncoder.ExtractFeatures"/>). Default 1.</summary>
    public int Layers { get; set; } = 1;
    /// <summary>The pixel normalisation the graph applies first (e.g. <see cref="PixelNormalization.Default"/>, with
    /// <c>Scale = 1/255</c> for byte pixels); null: the input is already normalised.</summary>
    public PixelNormalization? Normalization { get; set; }
    /// <summary>Classifier export: name of the <c>[batch, classes]</c> logits output.</summary>
    public string LogitsName { get; set; } = "logits";
    /// <summary>Classifier export: name of the <c>[batch, classes]</c> softmax output, or null to leave it out. ML.NET's
    /// multiclass trainers give such a vector as their <c>Score</c> column.</summary>
    public string? ProbabilitiesName { get; set; } = "probabilities";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that does not fit
    /// <paramref name="config"/> (with the classifier's outputs when <paramref name="classifier"/>).</summary>
    internal void Validate(MaeConfig config, bool classifier = false, bool checkLayers = true)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (classifier)
        {
            CheckName(LogitsName, nameof(LogitsName));
            if (ProbabilitiesName is not null) CheckName(ProbabilitiesName, nameof(ProbabilitiesName));
        }
        CheckName(InputName, nameof(InputName));
        CheckName(FeaturesName, nameof(FeaturesName));
        if (!Enum.IsDefined(InputLayout))
            throw new ArgumentException($"{nameof(InputLayout)} must be FlatChw or Nchw; got {InputLayout}.", nameof(InputLayout));
        // The encoder owns the list of poolings; these options throw ArgumentException for every bad setting.
        try { MaeEncoder.CheckPooling(Pooling, nameof(Pooling)); }
        catch (ArgumentOutOfRangeException e) { throw new ArgumentException(e.Message, nameof(Pooling), e); }
        if (checkLayers) MaeEncoder.CheckLayers(Layers, config, nameof(Layers));
        if (Normalization is not null)
        {
            try { Normalization.Validate(config.InChannels); }
            catch (ArgumentException e) { throw new ArgumentException($"{nameof(Normalization)}: {e.Message}", nameof(Normalization), e); }
        }
        CheckDistinct(OutputNames(classifier).Prepend(InputName).ToArray());
    }

    /// <summary>The graph's output names, in order.</summary>
    internal IEnumerable<string> OutputNames(bool classifier = false)
    {
        yield return FeaturesName;
        if (!classifier) yield break;
        yield return LogitsName;
        if (ProbabilitiesName is not null) yield return ProbabilitiesName;
    }

    static void CheckName(string? name, string setting)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new ArgumentException($"{setting} must be a non-empty name; got {(name is null ? "null" : $"'{name}'")}.", setting);
    }

    static void CheckDistinct(string[] names)
    {
        var dup = names.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new ArgumentException(
                $"The ONNX input and output names must be distinct; '{dup.Key}' is used {dup.Count()} times (names: {string.Join(", ", names)}).");
    }
}
