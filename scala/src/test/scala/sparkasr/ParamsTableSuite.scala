package sparkasr

import java.nio.charset.StandardCharsets

import org.apache.spark.ml.param._
import org.json4s._
import org.json4s.jackson.JsonMethods
import org.scalatest.funsuite.AnyFunSuite

/** Every Scala stage's params against the Python side's exported option table
  * (`python -m sparkasr.generated --json`, committed as scala/src/test/resources/sparkasr/params.json
  * and kept current by `--check`): the same names, types and defaults (`jvm_default` where the table
  * gives the JVM stage a default of its own), and a value outside `choices` refused. The params are generated from the same table (`sparkasr.spark.params`); this checks that
  * each stage mixes in its own trait and that nothing else declares a param. The Scala class of a
  * stage is the one named by its `python_class` (our JVM classes carry the Python class paths). */
class ParamsTableSuite extends AnyFunSuite {
  implicit val formats: Formats = DefaultFormats

  private lazy val table: Option[JValue] =
    Option(getClass.getResourceAsStream("/sparkasr/params.json")).map { in =>
      try JsonMethods.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8)) finally in.close()
    }

  private def typeName(p: Param[_]): String = p match {
    case _: IntParam => "int"
    case _: DoubleParam => "float"
    case _: BooleanParam => "bool"
    case _: StringArrayParam => "list<string>"
    case _: DoubleArrayParam => "list<float>"
    case _: IntArrayParam => "list<int>"
    case _: LongParam => "long"
    case _: FloatParam => "float32"
    case other if other.getClass == classOf[Param[_]] => "string"
    case other => other.getClass.getSimpleName
  }

  private def asJson(v: Any): JValue = v match {
    case s: String => JString(s)
    case i: Int => JInt(i)
    case d: Double => JDouble(d)
    case b: Boolean => JBool(b)
    case a: Array[_] => JArray(a.toList.map(asJson))
    case other => JString(other.toString)
  }

  private def sameValue(a: JValue, b: JValue): Boolean = (a, b) match {
    case (JInt(x), JDouble(y)) => x.toDouble == y
    case (JDouble(x), JInt(y)) => x == y.toDouble
    case (JDouble(x), JDouble(y)) => x == y
    case (JArray(xs), JArray(ys)) => xs.size == ys.size && xs.zip(ys).forall { case (x, y) => sameValue(x, y) }
    case _ => a == b
  }

  /** A value of the param's type that is not among `choices`. */
  private def outside(p: Param[_], choices: List[JValue]): Any = p match {
    case _: IntParam => (choices.collect { case JInt(i) => i.toInt }.maxOption.getOrElse(0)) + 1000
    case _: DoubleParam => choices.collect { case JDouble(d) => d; case JInt(i) => i.toDouble }.maxOption.getOrElse(0.0) + 1000.5
    case _: StringArrayParam => Array("__not_a_choice__")
    case _ => "__not_a_choice__"
  }

  private def fromJson(p: Param[_], v: JValue): Any = (p, v) match {
    case (_: IntParam, JInt(i)) => i.toInt
    case (_: DoubleParam, JInt(i)) => i.toDouble
    case (_: DoubleParam, JDouble(d)) => d
    case (_: BooleanParam, JBool(b)) => b
    case (_: StringArrayParam, JArray(xs)) => xs.map(_.extract[String]).toArray
    case (_, JString(s)) => s
    case (_, other) => fail(s"${p.name}: choice $other does not fit the param type")
  }

  test("the option table exists and names our five stages") {
    assume(table.isDefined, "scala/src/test/resources/sparkasr/params.json is not there yet (the Python side exports it)")
    val stages = (table.get \ "stages").extract[Map[String, JValue]]
    assert((table.get \ "format").extract[Int] == 1)
    assert(stages.keySet == Set("AudioAssembler", "WhisperForCTC", "Wav2Vec2ForCTC", "HubertForCTC", "WerEvaluator"))
  }

  test("each Scala stage has the Python stage's params: names, types, defaults, choices") {
    assume(table.isDefined, "scala/src/test/resources/sparkasr/params.json is not there yet (the Python side exports it)")
    val stages = (table.get \ "stages").extract[Map[String, JValue]]
    var checked = 0
    for ((stage, spec) <- stages) {
      val cls = (spec \ "python_class").extract[String]
      val instance = Class.forName(cls).getConstructor().newInstance().asInstanceOf[Params]
      val rows = (spec \ "params").extract[List[JValue]]
      val byName = instance.params.map(p => p.name -> p).toMap
      assert(byName.keySet == rows.map(r => (r \ "name").extract[String]).toSet, s"$stage param names")
      for (row <- rows) {
        val name = (row \ "name").extract[String]
        val p = byName(name).asInstanceOf[Param[Any]]
        assert(typeName(p) == (row \ "type").extract[String], s"$stage.$name type")
        // the JVM stage's own default where the table gives one (a value the JVM engine decodes), else Python's
        val default = (row \ "jvm_default") match { case JNothing => row \ "default"; case d => d }
        default match {
          case JNull | JNothing => assert(!instance.hasDefault(p), s"$stage.$name should have no default")
          case d =>
            assert(instance.hasDefault(p), s"$stage.$name default")
            assert(sameValue(asJson(instance.getDefault(p).get), d), s"$stage.$name default ${instance.getDefault(p).get} vs $d")
        }
        (row \ "choices") match {
          case JArray(choices) =>
            choices.foreach(c => assert(p.isValid(fromJson(p, c)), s"$stage.$name refuses its choice $c"))
            val bad = outside(p, choices)
            intercept[IllegalArgumentException](ParamPair(p, bad)) // what set() and copy() go through
          case _ =>
        }
        checked += 1
      }
    }
    assert(checked > 40)
  }

  test("each Scala param refuses what the Python option refuses: out of bounds, too many values, too long, not finite") {
    assume(table.isDefined, "scala/src/test/resources/sparkasr/params.json is not there yet (the Python side exports it)")
    val stages = (table.get \ "stages").extract[Map[String, JValue]]
    var bounded = 0
    for ((stage, spec) <- stages) {
      val instance = Class.forName((spec \ "python_class").extract[String]).getConstructor().newInstance().asInstanceOf[Params]
      for (row <- (spec \ "params").extract[List[JValue]]) {
        val name = (row \ "name").extract[String]
        val p = instance.getParam(name).asInstanceOf[Param[Any]]
        val kind = (row \ "type").extract[String]
        val lo = (row \ "minimum").extractOpt[Double]
        val hi = (row \ "maximum").extractOpt[Double]
        val items = (row \ "max_items").extractOpt[Int]
        val length = (row \ "max_length").extractOpt[Int]
        // one value of the element type that the option allows, and the value of the param's type holding it
        val ok: Any = kind match {
          case "int" | "list<int>" => lo.orElse(hi).getOrElse(0.0).toInt
          case "float" | "list<float>" => lo.orElse(hi).getOrElse(0.0)
          case _ => (row \ "choices") match { case JArray(c :: _) => c.extract[String]; case _ => "a" }
        }
        def wrap(v: Any): Any = kind match {
          case "list<int>" => Array(v.asInstanceOf[Int])
          case "list<float>" => Array(v.asInstanceOf[Double])
          case "list<string>" => Array(v.asInstanceOf[String])
          case _ => v
        }
        def valid(v: Any) = p.isValid(v)
        val where = s"$stage.$name"
        if (kind != "bool") assert(valid(wrap(ok)), s"$where refuses $ok")
        kind.stripPrefix("list<").stripSuffix(">") match {
          case "int" =>
            lo.foreach(b => if (b > Int.MinValue) assert(!valid(wrap(b.toInt - 1)), s"$where below $b"))
            hi.foreach(b => if (b < Int.MaxValue) assert(!valid(wrap(b.toInt + 1)), s"$where above $b"))
          case "float" =>
            lo.foreach(b => assert(!valid(wrap(b - 0.5)), s"$where below $b"))
            hi.foreach(b => assert(!valid(wrap(b + 0.5)), s"$where above $b"))
            for (bad <- Seq(Double.NaN, Double.PositiveInfinity, Double.NegativeInfinity))
              assert(!valid(wrap(bad)), s"$where takes $bad")
          case "string" =>
            length.foreach { n =>
              assert(!valid(wrap("x" * (n + 1))), s"$where takes ${n + 1} characters")
              if ((row \ "choices") == JNull || (row \ "choices") == JNothing) assert(valid(wrap("\ud83d\ude00" * n)), s"$where counts characters")
            }
          case _ =>
        }
        items.foreach { n =>
          val many = kind match {
            case "list<int>" => Array.fill(n + 1)(ok.asInstanceOf[Int])
            case "list<float>" => Array.fill(n + 1)(ok.asInstanceOf[Double])
            case _ => Array.fill(n + 1)(ok.asInstanceOf[String])
          }
          assert(!valid(many), s"$where takes ${n + 1} values")
        }
        if (lo.isDefined || hi.isDefined || items.isDefined || length.isDefined) bounded += 1
      }
    }
    assert(bounded > 30)
  }
}
