using System.CommandLine;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Model;

namespace Mae.Cli.Commands;

/// <summary><c>mae export --weights W --onnx out.onnx</c>: the encoder with pooling as an ONNX graph (ONNX Runtime
/// scores it without libtorch).</summary>
public static class ExportCommand
{
    public static Command Create(CliContext context)
    {
        var weights = CommonOptions.Weights(required: true);
        var onnx = new Option<FileInfo>("--onnx") { Description = "The ONNX file to write (opset 17, dynamic batch).", Required = true };
        var pooling = CommonOptions.Pooling();
        var layers = CommonOptions.Layers();
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var raw = new Option<bool>("--no-normalize")
        {
            Description = "Input is already normalised; by default the graph takes [N, C, H, W] pixels in [0, 1] and applies the ImageNet mean/std (grey: 0.449/0.226).",
        };
        var command = new Command("export", "Export the encoder (+ pooling) of a weights file to ONNX.") { weights, onnx, pooling, layers, size, heads, raw };
        command.SetAction(r =>
        {
            string path = CommonOptions.InputFile(r.GetValue(weights)!, "--weights");
            string target = CommonOptions.OutputFile(r.GetValue(onnx)!, "--onnx", ".onnx");
            using var encoder = MaeWeightFile.LoadEncoder(path, imageSize: r.GetValue(size), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            var norm = PixelNormalization.Default(encoder.Config.InChannels);
            var options = new MaeOnnxOptions
            {
                InputName = "pixels", FeaturesName = "features", InputLayout = MaeOnnxInputLayout.Nchw,
                Pooling = CommonOptions.ParsePooling(r.GetValue(pooling)!), Layers = r.GetValue(layers),
                Normalization = r.GetValue(raw) ? null : norm,
            };
            MaeOnnxExport.Export(encoder, target, options);   // written to a temporary file, then renamed
            var c = encoder.Config;
            context.Output.WriteLine($"wrote {target}: input pixels [batch, {c.InChannels}, {c.ImageSize}, {c.ImageSize}], output features [batch, {c.EmbedDim * options.Layers}] ({options.Pooling} pooling, {options.Layers} block(s))");
            return 0;
        });
        return command;
    }
}
