package sparkasr.audio

import java.io.{File, RandomAccessFile}
import java.nio.ByteOrder
import java.util.concurrent.ConcurrentHashMap

import scala.collection.mutable.ArrayBuffer

import org.bytedeco.ffmpeg.avcodec.{AVCodecContext, AVCodecDescriptor, AVPacket}
import org.bytedeco.ffmpeg.avformat.{AVFormatContext, Read_packet_Pointer_BytePointer_int, Seek_Pointer_long_int}
import org.bytedeco.ffmpeg.avutil.{AVDictionary, AVFrame}
import org.bytedeco.ffmpeg.global.avcodec._
import org.bytedeco.ffmpeg.global.avformat._
import org.bytedeco.ffmpeg.global.avutil._
import org.bytedeco.javacpp.{BytePointer, Pointer}
import sparkasr.Constants.SampleRate

/** Decode the audio formats users send (WAV/RF64, FLAC, OGG Vorbis/Opus, MP3, AIFF, M4A/AAC, WebM,
  * ...: [[FormatTable.Containers]]) into 16 kHz mono float32, from a local path or from encoded bytes
  * (`binaryFile` content), with FFmpeg through the JavaCPP presets. FFmpeg reads only through a
  * source opened here (the bytes, or the file opened by Java): no path reaches it as a URL. As in the
  * Python reader (`sparkasr.formats`), FFmpeg never probes: [[Sniff]] names the container from its
  * first bytes, anything but an allowed audio container is refused before FFmpeg sees it, the
  * container's demuxer is named explicitly with every FFmpeg whitelist set (that demuxer, no
  * protocol, the allowed audio decoders), and the stream's decoder must be allowed. Headerless
  * `.raw`/`.pcm` files are read as 16-bit little-endian 16 kHz mono PCM, as the Python reader does.
  *
  * The steps are the Python reader's (`sparkasr.audio`): integer PCM scaled by 1/2^15 (1/2^31 for
  * 24/32-bit), the channels averaged, then resampled ([[Resampler]]) when the rate is not 16 kHz.
  * 16-kHz lossless PCM therefore gives exactly the Python reader's samples. Errors are [[AudioError]]s
  * whose messages say why (empty, truncated, not an audio format we read, no audio stream, NaN/inf). */
object AudioDecoder {
  private val RawExtensions = Seq(".raw", ".pcm")

  def isRawName(name: String): Boolean = name != null && RawExtensions.exists(name.toLowerCase.endsWith)

  /** Decode encoded bytes; `name` (the file, for messages and the .raw rule) may be empty. */
  def decodeBytes(data: Array[Byte], name: String = ""): Array[Float] = {
    if (data == null || data.isEmpty) throw new AudioError("empty file (0 bytes)")
    Truncation.check(new Truncation.ArrayBytes(data)).foreach(m => throw new AudioError(m))
    decode(new ByteSource(data), name)
  }

  /** Decode a local file (a path or a `file:` URI). */
  def decodePath(path: String): Array[Float] = {
    val local = localPath(path)
    val f = new File(local)
    if (!f.exists()) throw new AudioError("file not found")
    if (f.isDirectory) throw new AudioError("is a directory, not an audio file")
    if (f.length() == 0) throw new AudioError("empty file (0 bytes)")
    val raf = new RandomAccessFile(f, "r")
    try Truncation.check(new Truncation.FileBytes(raf)).foreach(m => throw new AudioError(m))
    finally raf.close()
    decode(new FileSource(f), local)
  }

  /** Samples `[start, start + length)` of [[decodePath]] (16 kHz indices): the file is decoded and cut,
    * so the slice has exactly the samples of the whole-file decode. */
  def decodeSlice(path: String, start: Int, length: Int): Array[Float] = {
    if (start < 0 || length <= 0) throw new AudioError(s"invalid slice: start $start, length $length samples")
    val all = decodePath(path)
    val end = math.min(all.length.toLong, start.toLong + length).toInt
    val got = math.max(0, end - start)
    if (got < length - SampleRate / 1000)
      throw new AudioError(
        f"the file ends before the slice [${start.toDouble / SampleRate}%.3f, ${(start.toDouble + length) / SampleRate}%.3f) s does " +
          s"($got of its $length samples decoded): did it change since the slice was planned?")
    if (got == 0) Array.emptyFloatArray else java.util.Arrays.copyOfRange(all, start, end)
  }

  /** A `file:` URI or a plain path -> the local path. */
  def localPath(p: String): String = {
    val s =
      if (p.startsWith("file://")) p.substring("file://".length)
      else if (p.startsWith("file:")) p.substring("file:".length)
      else p
    if (s ne p) java.net.URLDecoder.decode(s.replace("+", "%2B"), "UTF-8") else s
  }

  // -- input: FFmpeg reads through one static read/seek callback pair from a source we opened
  // ourselves (bytes, or a file opened by Java), found by the format context's address, so no URL
  // or protocol ever reaches it (JavaCPP callbacks are native thunks: few, long-lived instances,
  // as JavaCV does it)

  private abstract class Source extends AutoCloseable {
    def length: Long
    def position: Long
    /** Up to `size` bytes into `buf` at the current position; the count, or -1 at the end. */
    def read(buf: BytePointer, size: Int): Int
    def seekTo(pos: Long): Unit
    /** Up to `n` bytes at `pos`, the position unchanged. */
    def bytesAt(pos: Long, n: Int): Array[Byte]
    override def close(): Unit = ()
  }

  private final class ByteSource(data: Array[Byte]) extends Source {
    private var pos = 0
    def length: Long = data.length.toLong
    def position: Long = pos.toLong
    def read(buf: BytePointer, size: Int): Int = {
      val n = math.min(size, data.length - pos)
      if (n <= 0) -1 else { buf.position(0).put(data, pos, n); pos += n; n }
    }
    def seekTo(p: Long): Unit = pos = p.toInt
    def bytesAt(p: Long, n: Int): Array[Byte] = data.slice(math.min(p, data.length.toLong).toInt, math.min(p + n, data.length.toLong).toInt)
  }

  private final class FileSource(file: File) extends Source {
    private val raf = new RandomAccessFile(file, "r")
    private val chunk = new Array[Byte](IoBufferSize)
    def length: Long = raf.length()
    def position: Long = raf.getFilePointer
    def read(buf: BytePointer, size: Int): Int = {
      val n = raf.read(chunk, 0, math.min(size, chunk.length))
      if (n <= 0) -1 else { buf.position(0).put(chunk, 0, n); n }
    }
    def seekTo(p: Long): Unit = raf.seek(p)
    def bytesAt(p: Long, n: Int): Array[Byte] = {
      val keep = raf.getFilePointer
      raf.seek(p)
      val b = new Array[Byte](math.max(0L, math.min(n.toLong, raf.length() - p)).toInt)
      raf.readFully(b)
      raf.seek(keep)
      b
    }
    override def close(): Unit = raf.close()
  }

  private val sources = new ConcurrentHashMap[java.lang.Long, Source]()

  private object ReadCallback extends Read_packet_Pointer_BytePointer_int {
    override def call(opaque: Pointer, buf: BytePointer, size: Int): Int = {
      val src = sources.get(opaque.address())
      if (src == null) return AVERROR_EOF
      try { val n = src.read(buf, size); if (n < 0) AVERROR_EOF else n }
      catch { case _: java.io.IOException => AVERROR_EOF }
    }
  }

  private object SeekCallback extends Seek_Pointer_long_int {
    override def call(opaque: Pointer, offset: Long, whence: Int): Long = {
      val src = sources.get(opaque.address())
      if (src == null) return -1L
      val w = whence & ~AVSEEK_FORCE
      if (w == AVSEEK_SIZE) return src.length
      val target = w match {
        case 0 => offset
        case 1 => src.position + offset
        case 2 => src.length + offset
        case _ => -1L
      }
      if (target < 0 || target > src.length) -1L
      else try { src.seekTo(target); target } catch { case _: java.io.IOException => -1L }
    }
  }

  private val IoBufferSize = 1 << 16
  private val CustomIo = 0x0080 // AVFMT_FLAG_CUSTOM_IO (libavformat/avformat.h; not in the presets)

  private def decode(src: Source, name: String): Array[Float] = {
    val (detected, fmt) =
      try {
        val d =
          if (isRawName(name)) Detected("headerless PCM", Some("s16le"), audio = true)
          else Sniff.sniffSource((pos, n) => src.bytesAt(pos, n))
        if (!d.audio) throw new AudioError(FormatTable.refusal(d.name))
        FFmpeg.init()
        val f = av_find_input_format(d.demuxer.get)
        if (f == null || f.isNull)
          throw new AudioError(s"not a decodable audio file (${d.name}: this FFmpeg has no ${d.demuxer.get} demuxer)")
        (d, f)
      } catch { case e: Throwable => src.close(); throw e }
    val demuxer = detected.demuxer.get
    var ctx = avformat_alloc_context()
    val key: java.lang.Long = ctx.address()
    sources.put(key, src)
    val buffer = new BytePointer(av_malloc(IoBufferSize.toLong))
    val avio = avio_alloc_context(buffer, IoBufferSize, 0, ctx, ReadCallback, null, SeekCallback)
    ctx.pb(avio)
    ctx.flags(ctx.flags() | CustomIo) // closing the context leaves our AVIOContext to us
    val options = new AVDictionary(null)
    var opened = false
    try {
      if (demuxer == "s16le") {
        av_dict_set(options, "sample_rate", SampleRate.toString, 0)
        av_dict_set(options, "ch_layout", "mono", 0)
      }
      // only the demuxer named here, no protocol for anything it might name, only audio decoders
      av_dict_set(options, "format_whitelist", demuxer, 0)
      av_dict_set(options, "protocol_whitelist", FormatTable.NoProtocol, 0)
      av_dict_set(options, "codec_whitelist", codecWhitelist, 0)
      if (demuxer == "mov") av_dict_set(options, "enable_drefs", "0", 0)
      val rc = avformat_open_input(ctx, null.asInstanceOf[BytePointer], fmt, options)
      if (rc < 0) {
        ctx = null // avformat_open_input frees a context it fails to open
        throw new AudioError(s"not a decodable audio file (${detected.name}: ${FFmpeg.errorText(rc)})")
      }
      opened = true
      val info = avformat_find_stream_info(ctx, null.asInstanceOf[org.bytedeco.javacpp.PointerPointer[_ <: Pointer]])
      if (info < 0) throw new AudioError(s"not a decodable audio file (${detected.name}: ${FFmpeg.errorText(info)})")
      val idx = av_find_best_stream(ctx, AVMEDIA_TYPE_AUDIO, -1, -1, null.asInstanceOf[org.bytedeco.ffmpeg.avcodec.AVCodec], 0)
      if (idx < 0) throw new AudioError(s"file has no audio stream (${detected.name})")
      decodeStream(ctx, idx, detected)
    } finally {
      av_dict_free(options)
      // an opened context is closed; one never opened (or not yet) is only freed: avformat_close_input
      // would read the demuxer state that opening sets up
      if (ctx != null) { if (opened) avformat_close_input(ctx) else avformat_free_context(ctx) }
      av_free(avio.buffer()) // FFmpeg may have replaced the one allocated above
      avio_context_free(avio)
      sources.remove(key)
      src.close()
    }
  }

  /** FFmpeg's `codec_whitelist`: the allowed decoders, with every `pcm_*`/`adpcm_*` codec this
    * FFmpeg knows (walked through its codec descriptors: no JavaCPP allocation). */
  private lazy val codecWhitelist: String = {
    FFmpeg.init()
    val names = scala.collection.mutable.TreeSet(FormatTable.AudioCodecs.toSeq: _*)
    var d = avcodec_descriptor_next(null.asInstanceOf[AVCodecDescriptor])
    while (d != null && !d.isNull) {
      val n = d.name().getString
      if (FormatTable.CodecFamilies.exists(n.startsWith)) names += n
      d = avcodec_descriptor_next(d)
    }
    names.mkString(",")
  }

  private def decodeStream(ctx: AVFormatContext, idx: Int, detected: Detected): Array[Float] = {
    val par = ctx.streams(idx).codecpar()
    val codec = avcodec_find_decoder(par.codec_id())
    if (codec == null || codec.isNull)
      throw new AudioError(FormatTable.codecRefusal(avcodec_get_name(par.codec_id()).getString, detected.name))
    val decoder = codec.name().getString
    if (!FormatTable.audioCodecAllowed(decoder)) throw new AudioError(FormatTable.codecRefusal(decoder, detected.name))
    val cc: AVCodecContext = avcodec_alloc_context3(codec)
    val pkt: AVPacket = av_packet_alloc()
    val frame: AVFrame = av_frame_alloc()
    val out = new Collector
    try {
      var rc = avcodec_parameters_to_context(cc, par)
      if (rc >= 0) rc = avcodec_open2(cc, codec, null.asInstanceOf[AVDictionary])
      if (rc < 0) throw new AudioError(s"cannot open the audio decoder (${FFmpeg.errorText(rc)})")
      var more = true
      while (more) {
        rc = av_read_frame(ctx, pkt)
        if (rc < 0) more = false
        else {
          if (pkt.stream_index() == idx) {
            val sent = avcodec_send_packet(cc, pkt)
            // a damaged packet is skipped (as the ffmpeg tool does); anything else ends the decode
            if (sent < 0 && sent != AVERROR_INVALIDDATA())
              throw new AudioError(f"decoding failed after ${out.seconds}%.2f s (${FFmpeg.errorText(sent)})")
            receive(cc, frame, out)
          }
          av_packet_unref(pkt)
        }
      }
      avcodec_send_packet(cc, null.asInstanceOf[AVPacket])
      receive(cc, frame, out)
      out.result()
    } finally {
      av_frame_free(frame)
      av_packet_free(pkt)
      avcodec_free_context(cc)
      out.close()
    }
  }

  private def receive(cc: AVCodecContext, frame: AVFrame, out: Collector): Unit = {
    var go = true
    while (go) {
      val rc = avcodec_receive_frame(cc, frame)
      if (rc == 0) { out.add(frame); av_frame_unref(frame) }
      else if (rc == AVERROR_EOF || rc == -11 /* AVERROR(EAGAIN) on Linux */) go = false
      else throw new AudioError(f"decoding failed after ${out.seconds}%.2f s (${FFmpeg.errorText(rc)})")
    }
  }

  /** Frames -> float, channel mean, resampled to 16 kHz (restarted when the rate changes mid-stream). */
  private final class Collector extends AutoCloseable {
    private val parts = ArrayBuffer.empty[Array[Float]]
    private var resampler: Resampler = null
    private var rate = -1
    private var native = 0L // native frames seen

    def seconds: Double = if (rate > 0) native.toDouble / rate else 0.0

    def add(frame: AVFrame): Unit = {
      val n = frame.nb_samples()
      val ch = math.max(frame.ch_layout().nb_channels(), 1)
      val r = frame.sample_rate()
      if (r != rate) {
        if (resampler != null) { parts += resampler.flush(); resampler.close(); resampler = null }
        rate = r
        if (r <= 0) throw new AudioError(s"invalid sample rate $r")
        if (r != SampleRate) resampler = new Resampler(r)
      }
      val mono = toMonoFloat(frame, n, ch)
      native += n
      parts += (if (resampler == null) mono else resampler.push(mono, 0, mono.length))
    }

    def result(): Array[Float] = {
      if (resampler != null) parts += resampler.flush()
      Audio.concat(parts.toSeq)
    }

    override def close(): Unit = if (resampler != null) { resampler.close(); resampler = null }
  }

  /** One frame's samples as float (libsndfile's scaling), checked finite, averaged over channels. */
  private def toMonoFloat(frame: AVFrame, n: Int, ch: Int): Array[Float] = {
    val fmt = frame.format()
    val planar = av_sample_fmt_is_planar(fmt) == 1
    val bps = av_get_bytes_per_sample(fmt)
    val out = new Array[Float](n)
    def buffer(plane: Int, count: Int) =
      new BytePointer(frame.extended_data(plane)).capacity(count.toLong * bps).asByteBuffer().order(ByteOrder.nativeOrder())
    val planes = if (planar) Array.tabulate(ch)(c => buffer(c, n)) else Array(buffer(0, n * ch))
    def sample(c: Int, i: Int): Float = {
      val (b, j) = if (planar) (planes(c), i) else (planes(0), i * ch + c)
      val v = fmt match {
        case AV_SAMPLE_FMT_U8 | AV_SAMPLE_FMT_U8P => ((b.get(j) & 0xff) - 128).toFloat * (1.0f / 128)
        case AV_SAMPLE_FMT_S16 | AV_SAMPLE_FMT_S16P => b.getShort(j * 2).toFloat * (1.0f / 32768)
        case AV_SAMPLE_FMT_S32 | AV_SAMPLE_FMT_S32P => b.getInt(j * 4).toFloat * (1.0f / 2147483648.0f)
        case AV_SAMPLE_FMT_FLT | AV_SAMPLE_FMT_FLTP => b.getFloat(j * 4)
        case AV_SAMPLE_FMT_DBL | AV_SAMPLE_FMT_DBLP => b.getDouble(j * 8).toFloat
        case AV_SAMPLE_FMT_S64 | AV_SAMPLE_FMT_S64P => (b.getLong(j * 8).toDouble / 9.223372036854775808e18).toFloat
        case other => throw new AudioError(s"unsupported sample format ${av_get_sample_fmt_name(other).getString}")
      }
      if (v.isNaN || v.isInfinite) throw new AudioError("audio contains NaN or infinite samples")
      v
    }
    var i = 0
    while (i < n) {
      var s = sample(0, i)
      var c = 1
      while (c < ch) { s += sample(c, i); c += 1 }
      out(i) = if (ch == 1) s else s / ch
      i += 1
    }
    out
  }
}
