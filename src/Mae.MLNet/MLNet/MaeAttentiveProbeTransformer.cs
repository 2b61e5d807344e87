using Mae.MLNet.Evaluation;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// An attentive probe in an ML.NET pipeline: reads the image column, runs the frozen encoder and the trained
/// <see cref="AttentiveClassifier"/>, adds <c>Score</c> (class probabilities) and <c>PredictedLabel</c> (the training
/// label's key type), like ML.NET's multiclass trainers and <see cref="MaeClassifierTransformer"/>. Lazy and batched;
/// row by row under <c>PredictionEngine</c>. Made by <c>MulticlassClassification.Trainers.MaeAttentiveProbe</c>.
/// </summary>
public sealed class MaeAttentiveProbeTransformer : ITransformer
{
    internal MaeAttentiveProbeTransformer(MaeEncoder encoder, AttentiveClassifier probe, PixelNormalization normalization, string inputColumnName,
        string labelColumnName, string scoreColumnName, string predictedLabelColumnName, KeyDataViewType labelType,
        DataViewSchema.Annotations labelAnnotations, int batchSize, MaeDevice device)
    {
        Encoder = encoder;
        Probe = probe;
        Normalization = normalization.Validate(encoder.Config.InChannels);
        InputColumnName = inputColumnName;
        LabelColumnName = labelColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
        LabelType = labelType;
        LabelAnnotations = labelAnnotations;
        BatchSize = batchSize;
        Device = device;
        Runner = new AttentiveProbeRunner(encoder, probe, device, Normalization);
        Outputs = MaeClassifierTransformer.MakeOutputs(scoreColumnName, predictedLabelColumnName, labelType, labelAnnotations, probe.NumClasses);
    }

    /// <summary>The frozen encoder (not changed by training).</summary>
    public MaeEncoder Encoder { get; }
    /// <summary>The trained attentive pooler + linear head.</summary>
    public AttentiveClassifier Probe { get; }
    /// <summary>How column values become model inputs: <c>(value · Scale − Mean[c]) / Std[c]</c>.</summary>
    public PixelNormalization Normalization { get; }
    public string InputColumnName { get; }
    public string LabelColumnName { get; }
    public string ScoreColumnName { get; }
    public string PredictedLabelColumnName { get; }
    public KeyDataViewType LabelType { get; }
    public DataViewSchema.Annotations LabelAnnotations { get; }
    public int NumClasses => Probe.NumClasses;
    public int BatchSize { get; }
    public MaeDevice Device { get; }
    /// <summary>Losses, validation accuracies and timings of the probe's training.</summary>
    public MaeAttentiveProbeResult? Training { get; internal init; }
    /// <summary>The schema it was fitted on (needed to save it as ML.NET's ONNX and multiclass transformers).</summary>
    public DataViewSchema? InputSchema { get; internal init; }
    /// <summary>The caller's ML.NET environment, in which saving builds the zip's transformers.</summary>
    internal MaeHost? Host { get; init; }
    internal AttentiveProbeRunner Runner { get; }
    internal IReadOnlyList<OutputColumn> Outputs { get; }

    /// <summary>The class names from the label's key values (text), or null when it has none.</summary>
    public string[]? ClassNames() => MaeClassifierTransformer.KeyValueNames(LabelAnnotations);

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => ImageColumnMapping.OutputSchema(inputSchema, InputColumnName, Runner, Outputs);

    public IDataView Transform(IDataView input) => ImageColumnMapping.Transform(input, InputColumnName, Runner, Outputs, BatchSize);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => ImageColumnMapping.RowMapper(inputSchema, InputColumnName, Runner, Outputs);

    /// <summary>Saved as ML.NET's own transformers: an <c>OnnxTransformer</c> for the encoder and the attentive pooler,
    /// and ML.NET's multiclass model holding the head's weights (<see cref="AttentiveProbePersistence"/>).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => AttentiveProbePersistence.Save(this, ctx);
}
