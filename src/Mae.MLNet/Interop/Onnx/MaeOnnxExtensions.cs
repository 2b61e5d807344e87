using Mae.MLNet.Model;

namespace Mae.MLNet.Interop.Onnx;

/// <summary><c>ExportOnnx(path)</c> on the models: an ONNX file that ONNX Runtime (and ML.NET's
/// <c>ApplyOnnxModel</c>) scores without libtorch. The file is written atomically.</summary>
internal static class MaeOnnxExtensions
{
    /// <summary>Exports pixels → pooled encoder features (see <see cref="MaeOnnxExport"/>).</summary>
    public static void ExportOnnx(this MaeEncoder encoder, string path, MaeOnnxOptions? options = null)
        => MaeOnnxExport.Export(encoder, path, options);

    /// <summary>Exports the encoder of a masked autoencoder (the decoder is not needed for features).</summary>
    public static void ExportOnnx(this MaskedAutoencoder model, string path, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        MaeOnnxExport.Export(model.Encoder, path, options);
    }

    /// <summary>Exports pixels → features, logits and (unless disabled) probabilities.</summary>
    public static void ExportOnnx(this VitClassifier classifier, string path, VitClassifierOnnxOptions? options = null)
        => MaeOnnxExport.Export(classifier, path, options);
}
