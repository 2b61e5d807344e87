using Mae.MLNet.Evaluation;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// An attentive probe in an ML.NET pipeline: reads the image column, runs the frozen encoder and the trained
/// <see cref="AttentiveClassifier"/>, adds <c>Score</c> (class probabilities) and <c>PredictedLabel</c> (the training
/// label's key type), like ML.NET's multiclass trainers and <see cref="MaeClassifierTransformer"/>
/// (<see cref="MaeImageClassifierTransformer"/>). Made by <c>MulticlassClassification.Trainers.MaeAttentiveProbe</c>.
/// </summary>
public sealed class MaeAttentiveProbeTransformer : MaeImageClassifierTransformer
{
    internal MaeAttentiveProbeTransformer(MaeEncoder encoder, AttentiveClassifier probe, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType,
        DataViewSchema.Annotations labelAnnotations, int batchSize, MaeDevice device)
        : base(encoder.Config, normalization, inputColumnName, labelColumnName, scoreColumnName, predictedLabelColumnName, labelType,
               labelAnnotations, probe.NumClasses, batchSize, device)
    {
        Encoder = encoder;
        Probe = probe;
        runner = new AttentiveProbeRunner(encoder, probe, device, Normalization);
    }

    readonly AttentiveProbeRunner runner;

    /// <summary>The frozen encoder (not changed by training).</summary>
    public MaeEncoder Encoder { get; }
    /// <summary>The trained attentive pooler + linear head.</summary>
    public AttentiveClassifier Probe { get; }
    public override int NumClasses => Probe.NumClasses;
    /// <summary>Losses, validation accuracies and timings of the probe's training.</summary>
    public MaeAttentiveProber.Result? Training { get; internal init; }
    private protected override ITensorFunction Runner => runner;

    /// <summary>The encoder and the attentive pooler as ONNX, the head as ML.NET's multiclass model
    /// (<see cref="AttentiveProbePersistence"/>).</summary>
    private protected override TransformerChain<ITransformer> BuildPersisted(MaeHost host, DataViewSchema inputSchema)
        => AttentiveProbePersistence.Build(host, this, inputSchema);
}
