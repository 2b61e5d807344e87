using System.CommandLine;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Model;

namespace Mae.Cli.Commands;

/// <summary><c>mae export --weights W --onnx out.onnx</c>: the encoder with pooling (or a ConvNeXt V2 up to its pooled
/// features) as an ONNX graph (ONNX Runtime scores it without libtorch). <c>mae export --weights run/checkpoint-0007.maeckpt --out mae.safetensors</c>: a
/// checkpoint's model as a weights file (+ its config JSON), e.g. after a stopped run.</summary>
public static class ExportCommand
{
    public static Command Create(CliContext context)
    {
        var weights = CommonOptions.Weights(required: true);
        var onnx = new Option<FileInfo?>("--onnx")
        {
            Description = "The ONNX file to write (opset 17, dynamic batch): the encoder + pooling; for ConvNeXt V2 weights the network up to its pooled " +
                          "features (--layers: the last 1–4 stages, default 1), with logits when the file has a head.",
        };
        var weightsOut = new Option<FileInfo?>("--out")
        {
            Description = "A .safetensors weights file to write (+ its config, name.json): the whole model of --weights, e.g. of a .maeckpt / .maeft checkpoint; " +
                          "ConvNeXt V2 weights (a timm or official file, an FCMAE .maeckpt: its encoder) are written under timm's names, without a .json.",
        };
        var pooling = CommonOptions.Pooling();
        var layers = CommonOptions.Layers();
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var raw = new Option<bool>("--no-normalize")
        {
            Description = "Input is already normalised; by default the graph takes [N, C, H, W] pixels in [0, 1] and applies the ImageNet mean/std (grey: 0.449/0.226).",
        };
        var command = new Command("export", "Export a model: the encoder (+ pooling) to ONNX (--onnx), and/or a checkpoint's model to a weights file (--out).")
        {
            weights, onnx, weightsOut, pooling, layers, size, heads, raw,
        };
        command.SetAction(r =>
        {
            if (r.GetValue(onnx) is null && r.GetValue(weightsOut) is null)
                throw new CliException("export: give --onnx FILE.onnx (the encoder as an ONNX graph) and/or --out FILE.safetensors (a weights file).");
            var input = r.GetValue(weights)!;
            string source = CliFiles.InputFile(input, "--weights");
            if (r.GetValue(weightsOut) is { } outFile)
            {
                string target = CliFiles.OutputFile(outFile, "--out", [source], ".safetensors");
                bool convNext;
                if (CliWeights.IsCheckpoint(source)) convNext = CliWeights.Export(source, target);
                else if (convNext = MaeWeightFile.HoldsConvNextV2(source))
                    using (var model = MaeWeightFile.LoadConvNextV2(source)) MaeWeightFile.SaveConvNextV2(model, target);   // e.g. a timm pickle or an official checkpoint
                else
                    using (var model = MaeWeightFile.LoadMaskedAutoencoder(source, heads: CommonOptions.ParseHeads(r.GetValue(heads)))) MaeWeightFile.Save(model, target);
                context.Output.WriteLine(convNext
                    ? $"wrote {target} (a ConvNeXt V2 under timm's names; the architecture is read back from its shapes) from '{source}'"
                    : $"wrote {target} (+ {Path.GetFileName(Path.ChangeExtension(target, ".json"))}) from '{source}'");
            }
            if (r.GetValue(onnx) is not { } onnxFile) return 0;
            string onnxTarget = CliFiles.OutputFile(onnxFile, "--onnx", null, ".onnx");
            using var weightsFile = CliWeights.Resolve(input);
            if (MaeWeightFile.HoldsConvNextV2(weightsFile.Path)) return ExportConvNext(context, weightsFile.Path, onnxTarget, r.GetValue(size), r.GetValue(layers), r.GetValue(raw));
            using var encoder = MaeWeightFile.LoadEncoder(weightsFile.Path, imageSize: CommonOptions.CheckInputSize(r.GetValue(size)), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            var norm = PixelNormalization.Default(encoder.Config.InChannels);
            var options = new MaeOnnxOptions
            {
                InputName = "pixels", FeaturesName = "features", InputLayout = MaeOnnxOptions.Layout.Nchw,
                Pooling = CommonOptions.ParsePooling(r.GetValue(pooling)!), Layers = CommonOptions.ResolveLayers(r.GetValue(layers), encoder.Config),
                Normalization = r.GetValue(raw) ? null : norm,
            };
            MaeOnnxExport.Export(encoder, onnxTarget, options);   // written to a temporary file, then renamed
            var c = encoder.Config;
            context.Output.WriteLine($"wrote {onnxTarget}: input pixels [batch, {c.InChannels}, {c.ImageSize}, {c.ImageSize}], output features [batch, {MaeEncoder.FeatureWidth(c, options.Pooling, options.Layers)}] ({options.Pooling} pooling, {options.Layers} block(s))");
            return 0;
        });
        return command;
    }

    /// <summary>A ConvNeXt V2 file (told by its names): the network at --input-size (224 by default) up to the pooled
    /// features of the last --layers stages (default 1: timm's pre_logits), plus logits and probabilities when the
    /// file has a classifier head.</summary>
    static int ExportConvNext(CliContext context, string path, string target, int? size, int? layers, bool raw)
    {
        int stages = layers ?? 1;
        if (stages is < 1 or > 4) throw new CliException($"--layers must be between 1 and 4 (a ConvNeXt V2's stages); got {stages}.");
        using var model = LoadConvNext(path, size);
        return ExportConvNext(context, model, path, target, stages, raw);
    }

    /// <summary>A ConvNeXt V2 weights file at --input-size (224, timm's, by default; the architecture from the shapes).</summary>
    internal static ConvNextV2 LoadConvNext(string path, int? size)
    {
        var model = MaeWeightFile.LoadConvNextV2(path);
        if (size is not int s || s == model.Config.ImageSize) return model;
        using (model)
        {
            ConvNextV2Config config;
            try { config = (model.Config with { ImageSize = CommonOptions.CheckInputSize(s) }).Validate(); }
            catch (ArgumentException e) { throw new CliException($"--input-size: {e.Message}"); }
            return MaeWeightFile.LoadConvNextV2(path, config);
        }
    }

    static int ExportConvNext(CliContext context, ConvNextV2 model, string path, string target, int stages, bool raw)
    {
        var config = model.Config;
        if (model.NumClasses > 0 && stages != 1)
            throw new CliException($"--layers: '{path}' holds a ConvNeXt V2 classifier, whose features are its last stage's; got {stages}.");
        var options = new MaeOnnxOptions
        {
            InputName = "pixels", FeaturesName = "features", InputLayout = MaeOnnxOptions.Layout.Nchw, Layers = stages,
            Normalization = raw ? null : PixelNormalization.Default(config.InChannels),
        };
        MaeOnnxExport.Export(model, target, options);   // written to a temporary file, then renamed
        context.Output.WriteLine($"wrote {target}: input pixels [batch, {config.InChannels}, {config.ImageSize}, {config.ImageSize}], output features " +
                                 $"[batch, {model.FeatureWidth(stages)}] (ConvNeXt V2, pooled last {stages} stage(s))" +
                                 (model.NumClasses > 0 ? $", logits and probabilities [batch, {model.NumClasses}]" : ""));
        return 0;
    }
}
