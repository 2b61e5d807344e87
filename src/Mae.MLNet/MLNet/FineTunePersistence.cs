using Mae.MLNet.Interop.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>
/// Saves a fine-tuned classifier as ML.NET's own transformers, like the featurizer (<see cref="OnnxPersistence"/>):
/// the network up to the pooled, normalised features (ViT: global pool + fc_norm, or cls + norm; ConvNeXt V2: global
/// pool + head.norm) becomes a per-row ONNX
/// graph in an <c>OnnxTransformer</c>, and the linear head becomes ML.NET's multiclass model
/// (<see cref="MaximumEntropyHead"/>: Score = softmax(W·x + b), PredictedLabel with the training label's key values);
/// the temporary feature column is dropped. <c>mlContext.Model.Load</c> gives these transformers back: they score
/// with ONNX Runtime and ML.NET alone, no Mae.MLNet or libtorch.
/// </summary>
internal static class FineTunePersistence
{
    /// <summary>The ML.NET transformers equivalent to <paramref name="transformer"/>, bound to its training schema, in the
    /// caller's environment (<paramref name="host"/>).</summary>
    public static TransformerChain<ITransformer> Build(MaeHost host, MaeClassifierTransformer transformer, DataViewSchema inputSchema)
    {
        var convNext = transformer.ConvNext;
        var norm = transformer.Normalization;
        string features = $"{transformer.ScoreColumnName}__mae_features";
        MaeOnnxOptions Onnx(string pixelColumn, float pixelScale) => new()
        {
            InputName = pixelColumn, FeaturesName = features, LogitsName = features + "_logits", ProbabilitiesName = null,
            Normalization = norm with { Scale = pixelScale }, PerRow = true,
        };
        var onnx = OnnxPersistence.BuildOnnxTransformer(host.Transforms, inputSchema, transformer.InputColumnName, features, transformer.Geometry,
            (pixelColumn, pixelScale, stream) =>
            {
                if (convNext is not null) MaeOnnxExport.Export(convNext, stream, Onnx(pixelColumn, pixelScale));
                else MaeOnnxExport.Export(transformer.Model, stream, Onnx(pixelColumn, pixelScale));
            },
            norm.Scale);
        var head = convNext is not null ? convNext.head!.fc! : transformer.Model.head;
        return WithHead(host, onnx, inputSchema, features, head, transformer.ClassNames(),
            transformer.LabelColumnName, transformer.ScoreColumnName, transformer.PredictedLabelColumnName);
    }

    /// <summary><paramref name="features"/> (the temporary column <paramref name="onnx"/> adds) through
    /// <paramref name="head"/> as <see cref="MaximumEntropyHead"/>, then the feature column dropped (the attentive
    /// probe's zip is made the same way).</summary>
    internal static TransformerChain<ITransformer> WithHead(MaeHost host, ITransformer onnx, DataViewSchema inputSchema, string features,
        TorchSharp.Modules.Linear head, string[]? classNames, string labelColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        var featureSchema = onnx.GetOutputSchema(inputSchema);
        var (weights, bias) = HeadWeights(head);
        var headTransformer = MaximumEntropyHead.Create(host.Environment, weights, bias, classNames, featureSchema, features,
            labelColumnName, scoreColumnName, predictedLabelColumnName);
        var drop = host.Transforms.DropColumns(features).Fit(new EmptyDataView(headTransformer.GetOutputSchema(featureSchema)));
        return new TransformerChain<ITransformer>(onnx, headTransformer, drop);
    }

    static (float[][] Weights, float[] Bias) HeadWeights(TorchSharp.Modules.Linear head)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var w = head.weight!.detach().to(ScalarType.Float32).cpu().contiguous();
        var b = head.bias!.detach().to(ScalarType.Float32).cpu().contiguous();
        var flat = w.data<float>().ToArray();
        int classes = (int)w.shape[0], width = (int)w.shape[1];
        var rows = Enumerable.Range(0, classes).Select(k => flat.AsSpan(k * width, width).ToArray()).ToArray();
        return (rows, b.data<float>().ToArray());
    }
}
