using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// Saves an attentive probe as ML.NET's own transformers, as the fine-tuned classifier (<see cref="FineTunePersistence"/>):
/// encoder + attentive pooler as a per-row ONNX graph in an <c>OnnxTransformer</c>, the linear head as ML.NET's
/// multiclass model (<see cref="MaximumEntropyHead"/>), the temporary feature column dropped. The loaded zip scores
/// with ONNX Runtime and ML.NET alone.
/// </summary>
internal static class AttentiveProbePersistence
{
    /// <summary>The ML.NET transformers equivalent to <paramref name="transformer"/>, bound to its training schema, in the
    /// caller's environment (<paramref name="host"/>).</summary>
    public static TransformerChain<ITransformer> Build(MaeHost host, MaeAttentiveProbeTransformer transformer, DataViewSchema inputSchema)
    {
        var norm = transformer.Normalization;
        string features = $"{transformer.ScoreColumnName}__mae_features";
        var onnx = OnnxPersistence.BuildOnnxTransformer(host.Transforms, inputSchema, transformer.InputColumnName, features, transformer.Encoder.Config,
            (pixelColumn, pixelScale, stream) => MaeOnnxExport.Export(transformer.Encoder, transformer.Probe.pooler, stream, new MaeOnnxOptions
            {
                InputName = pixelColumn, FeaturesName = features, Normalization = norm with { Scale = pixelScale }, PerRow = true,
            }),
            norm.Scale);
        return FineTunePersistence.WithHead(host, onnx, inputSchema, features, transformer.Probe.head, transformer.ClassNames(),
            transformer.LabelColumnName, transformer.ScoreColumnName, transformer.PredictedLabelColumnName);
    }
}
